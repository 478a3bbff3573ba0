"""`make bench-dashboard`: the overview's read figures with 10 million events, then the live view's.

What is measured, on this machine (two cores, shared with whatever else runs there):
1. seeding (bench/seed_events.py): BENCH_EVENTS (10,000,000) events of one UTC site over the last
   30 days, generated inside chDB on `pulse migrate`'s schema, so that every view fills as the
   rollup worker's inserts fill them; timed. The seeded home is kept in BENCH_SEED_CACHE (default
   .pulse/bench-dashboard-<events>) and used again while it was seeded today (UTC) by the same
   generator and migrations: its 30 days then still cover the overview's "last 30 days". Otherwise,
   or with BENCH_SEED_CACHE=off, it is seeded anew.
2. per panel: every stats query the overview runs for "last 30 days" (pulse.stats.overview: the
   cards, the previous period's cards, the chart, each breakdown panel; the goals panel with two
   goals given to this run only, as the seeded site has none), unfiltered and filtered by one
   country (country is DE), through StatsQueries on the seeded chDB in a child process: the rollup
   path BENCH_ROUNDS times after one warm-up (which folds the past days, timed apart), and, as the
   baseline, the raw-events path (PULSE_STATS_ROLLUPS=false) BENCH_RAW_ROUNDS times.
3. the whole page: one `pulse run dashboard` process on the seeded home, as production runs it,
   signed in through the login form; GET /sites/{id}?period=30d and the same with
   &f=country,is,DE over HTTP (the page renders every card, the chart and every panel in that one
   request), BENCH_ROUNDS times after a warm-up load; then the raw baseline: the same requests to
   a dashboard started with PULSE_STATS_ROLLUPS=false, BENCH_RAW_ROUNDS times.
4. the live view, bench/dashboard_live.py: beacon-to-screen latency in Chromium and SSE fan-out
   to 5,000 clients (BENCH_LIVE=off skips it).

Times are wall clock, p95 the 95th percentile. The last line is one JSON object: live_p50_ms,
live_p99_ms, page_p95_ms (the slower of the unfiltered and the filtered page), panel_p95_ms (over
every panel query, unfiltered and filtered), events, sse_clients, sse_rss_mb, sse_p99_ms.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import msgspec

from freshness import percentile
from harness import embedded_valkey, start_server, stop_server
from pulse.embedded.services import free_port
from pulse.settings import REPO_ROOT
from seed_events import Seeded

EVENTS = int(os.environ.get("BENCH_EVENTS", "10000000"))
ROUNDS = int(os.environ.get("BENCH_ROUNDS", "20"))
RAW_ROUNDS = int(os.environ.get("BENCH_RAW_ROUNDS", "1"))
SEED_CACHE = os.environ.get("BENCH_SEED_CACHE", str(REPO_ROOT / ".pulse" / f"bench-dashboard-{EVENTS}"))
LIVE = os.environ.get("BENCH_LIVE", "on") != "off"
FILTER = ("country", "is", "DE")
PERIOD = "30d"
PAGE_TIMEOUT_S = 1800.0
TARGET_PAGE_MS = 150.0
TARGET_PANEL_MS = 50.0
CSRF = re.compile(r'name="_csrf_token" value="([^"]+)"')
BENCH = Path(__file__).resolve().parent


def main() -> None:
    seeded, cached = seed()
    if cached:
        print(
            f"seed: the cached {seeded.events:,} events of {seeded.home}, seeded {seeded.end:%Y-%m-%d %H:%M} UTC"
        )
    else:
        print(
            f"seed: {seeded.events:,} events in {seeded.insert_s:.1f} s "
            f"({seeded.events / seeded.insert_s:,.0f} events/s), parts merged in {seeded.merge_s:.1f} s"
        )
    panels = measure_panels(seeded)
    pages = measure_pages(seeded)
    figures: dict[str, Any] = {}
    if LIVE:
        from dashboard_live import live_latency, sse_fanout

        figures |= live_latency()
        figures |= sse_fanout()
        print(
            f"live: beacon to screen p50 {figures['live_p50_ms']} ms, p99 {figures['live_p99_ms']} ms; "
            f"SSE to {figures['sse_clients']} clients p99 {figures['sse_p99_ms']} ms, RSS {figures['sse_rss_mb']} MB"
        )
    summary = {
        "live_p50_ms": figures.get("live_p50_ms", -1.0),
        "live_p99_ms": figures.get("live_p99_ms", -1.0),
        "page_p95_ms": max(pages["unfiltered"], pages["filtered"]),
        "panel_p95_ms": panels,
        "events": seeded.events,
        "sse_clients": figures.get("sse_clients", 0),
        "sse_rss_mb": figures.get("sse_rss_mb", -1.0),
        "sse_p99_ms": figures.get("sse_p99_ms", -1.0),
    }
    print(json.dumps(summary))


# --- seeding ------------------------------------------------------------------------------------


def seed() -> tuple[Seeded, bool]:
    """The seeded home, from the cache when it is today's and of this generator and schema."""
    if SEED_CACHE == "off":
        home = Path(tempfile.mkdtemp(prefix="pulse-bench-dashboard-"))
        return _seed(home), False
    cache = Path(SEED_CACHE)
    stamp = cache / "bench-seed.json"
    key = _seed_key()
    if stamp.exists():
        found = json.loads(stamp.read_text())
        seeded = msgspec.convert(found["seeded"], Seeded)
        if found["key"] == key and seeded.end.date() == datetime.now(UTC).date():
            return seeded, True
    shutil.rmtree(cache, ignore_errors=True)
    cache.mkdir(parents=True)
    seeded = _seed(cache)
    stamp.write_text(json.dumps({"key": key, "seeded": msgspec.to_builtins(seeded)}))
    return seeded, False


def _seed(home: Path) -> Seeded:
    argv = [sys.executable, str(BENCH / "seed_events.py"), "--events", str(EVENTS), "--home", str(home)]
    done = subprocess.run(argv, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise SystemExit(f"seeding failed:\n{done.stdout[-2000:]}\n{done.stderr[-2000:]}")
    return msgspec.json.decode(done.stdout.strip().splitlines()[-1], type=Seeded)


def _seed_key() -> str:
    """What the seeded rows depend on: the row generator, the schema, and how many."""
    digest = hashlib.sha256(str(EVENTS).encode())
    sources = [REPO_ROOT / "backend/pulse/loadgen/history.py", BENCH / "seed_events.py"]
    for path in [*sources, *sorted((REPO_ROOT / "migrations").rglob("*.sql"))]:
        digest.update(path.read_bytes())
    return digest.hexdigest()


# --- per panel ----------------------------------------------------------------------------------


def measure_panels(seeded: Seeded) -> float:
    """Each overview query, rollups and raw, unfiltered and filtered; the rollups' p95 over all."""
    argv = [sys.executable, str(BENCH / "dashboard_panels.py"), msgspec.json.encode(seeded).decode()]
    env = {**os.environ, "BENCH_ROUNDS": str(ROUNDS), "BENCH_RAW_ROUNDS": str(RAW_ROUNDS)}
    done = subprocess.run(argv, capture_output=True, text=True, check=False, env=env)
    print(done.stdout.rstrip("\n").rsplit("\n", 1)[0] if "\n" in done.stdout else "")
    if done.returncode != 0:
        raise SystemExit(f"measuring the panels failed:\n{done.stdout[-2000:]}\n{done.stderr[-3000:]}")
    return float(json.loads(done.stdout.strip().splitlines()[-1])["panel_p95_ms"])


# --- the whole page -----------------------------------------------------------------------------


def measure_pages(seeded: Seeded) -> dict[str, float]:
    """The overview page over HTTP, rollups on (BENCH_ROUNDS) and off (BENCH_RAW_ROUNDS)."""
    fast = _pages(seeded, rollups=True, rounds=ROUNDS)
    raw = _pages(seeded, rollups=False, rounds=RAW_ROUNDS) if RAW_ROUNDS else {}
    p95 = {}
    for name, times in fast.items():
        if name == "warm-up":
            continue
        p95[name] = percentile(times, 0.95)
        line = f"page {name:<10} p50 {percentile(times, 0.5):8.1f} ms   p95 {p95[name]:8.1f} ms"
        if raw:
            base = percentile(raw[name], 0.95)
            line += f"   raw p95 {base:9.1f} ms   {base / p95[name]:6.1f}x faster"
        verdict = "meets" if p95[name] <= TARGET_PAGE_MS else "misses"
        print(f"{line}   ({verdict} the {TARGET_PAGE_MS:.0f} ms target)")
    print(f"page first load after seeding (folds the past days): {fast['warm-up'][0]:.0f} ms")
    return p95


def _pages(seeded: Seeded, rollups: bool, rounds: int) -> dict[str, list[float]]:
    home = Path(seeded.home)
    with embedded_valkey(home) as redis_url:
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        env = {
            "PULSE_HOME": str(home),
            "REDIS_URL": redis_url,
            "PULSE_DASHBOARD_PORT": str(port),
            "PULSE_STATS_ROLLUPS": "true" if rollups else "false",
            "PULSE_LOGIN_RATE_LIMIT_PER_MIN": "0",
        }

        def ready() -> bool:
            return httpx.get(f"{url}/healthz").status_code == 200

        # Both cores, as the per-panel figures: chDB spreads a query over them.
        dashboard = start_server(
            "dashboard",
            [sys.executable, "-m", "pulse", "run", "dashboard"],
            env,
            home / "logs" / "bench-dashboard.log",
            ready,
            cpu="0,1",
        )
        try:
            return asyncio.run(_load_pages(url, seeded, rounds, warm_up=rollups))
        finally:
            stop_server(dashboard)


async def _load_pages(url: str, seeded: Seeded, rounds: int, warm_up: bool) -> dict[str, list[float]]:
    page = f"/sites/{seeded.site_id}"
    views = {"unfiltered": {"period": PERIOD}, "filtered": {"period": PERIOD, "f": ",".join(FILTER)}}
    times: dict[str, list[float]] = {name: [] for name in views}
    async with httpx.AsyncClient(base_url=url, timeout=PAGE_TIMEOUT_S) as client:
        await _login(client, seeded)
        if warm_up:
            times["warm-up"] = [await _load(client, page, views["unfiltered"])]
        for _ in range(rounds):
            for name, params in views.items():
                times[name].append(await _load(client, page, params))
    return times


async def _load(client: httpx.AsyncClient, page: str, params: dict[str, str]) -> float:
    started = time.perf_counter()
    response = await client.get(page, params=params)
    elapsed = (time.perf_counter() - started) * 1000
    if response.status_code != 200 or "Bench" not in response.text:
        raise SystemExit(f"GET {page} {params} answered {response.status_code}:\n{response.text[:2000]}")
    return elapsed


async def _login(client: httpx.AsyncClient, seeded: Seeded) -> None:
    form = await client.get("/login")
    token = CSRF.search(form.text)
    if token is None:
        raise SystemExit("the login form carries no CSRF token")
    await client.post(
        "/login", data={"email": seeded.email, "password": seeded.password, "_csrf_token": token[1]}
    )
    if not client.cookies.get("pulse_session"):
        raise SystemExit("could not sign in to the dashboard")


if __name__ == "__main__":
    main()
