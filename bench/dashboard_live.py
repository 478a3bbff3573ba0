"""The live view, measured: beacon-to-screen latency in a real browser, and SSE fan-out to 5,000 clients.

`live_latency()` runs `pulse up` in a temporary home, opens the live view
(/sites/{id}/realtime) in headless Chromium, sends beacons at a steady rate through the real
collector (each with its own path, after 100 warm-up beacons at the same rate, once they are on
screen) and reads from the page when each one was on screen
(window.pulseLive.arrivals, recorded in a requestAnimationFrame after a tick is applied): its
row, or for a beacon beyond the 20 a tick lists, the tick that moved the chart with it. Beacon
send time and screen time are both read from this machine's wall clock.

`sse_fanout()` starts one dashboard process (`pulse run dashboard`, exactly as production runs it)
on core 0, opens thousands of live-view streams to it from raw asyncio sockets on core 1, publishes
ticks on Redis as the rollup worker does, each carrying its publish time, and measures publish →
received across every client, and the dashboard process's resident memory from /proc (embedded,
so it includes chDB; sse_rss_added_mb is what the streams added).

`uv run python bench/dashboard_live.py [live|sse]` runs one or both and ends with one JSON line.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import resource
import secrets
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, cast

import httpx
import msgspec
import uvloop
from playwright.async_api import Page, async_playwright
from redis.asyncio import Redis

from freshness import BROWSER_UA, percentile, start_pulse
from harness import LOAD_CPU, SERVER_CPU, cpu_seconds, embedded_valkey, pinned, stop_server
from pulse.embedded.services import free_port
from pulse.live.keys import tick_channel
from pulse.live.tick import RECENT_PER_TICK, LiveEvent, Tick
from pulse.migrate import migrate
from pulse.oltp.accounts import Accounts
from pulse.oltp.db import create_engine
from pulse.settings import load_settings

LIVE_BEACONS = int(os.environ.get("BENCH_LIVE_BEACONS", "500"))
LIVE_RATE_PER_S = float(os.environ.get("BENCH_LIVE_RATE", "20"))
WARM_UP_BEACONS = 100
SSE_CLIENTS = int(os.environ.get("BENCH_SSE_CLIENTS", "5000"))
SSE_TICKS = int(os.environ.get("BENCH_SSE_TICKS", "30"))
SSE_TICK_EVERY_S = 1.0
# Beacons still on their way after the last one was sent get this long to reach the screen.
DRAIN_S = 15.0
CONNECT_PARALLEL = 200
CONNECT_TIMEOUT_S = 180.0
# Loading chDB on a busy 2-core machine takes a while.
DASHBOARD_START_S = 120.0
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking"]
CSRF = re.compile(r'name="_csrf_token" value="([^"]+)"')
# The bench's own throwaway user, in a home deleted afterwards.
PASSWORD = secrets.token_urlsafe(16)


# --- beacon to screen ---------------------------------------------------------------------------


def live_latency(beacons: int = LIVE_BEACONS, rate_per_s: float = LIVE_RATE_PER_S) -> dict[str, float]:
    """Beacon sent → its row on screen in the live view, over `beacons` sent at `rate_per_s`."""
    with tempfile.TemporaryDirectory(prefix="pulse-bench-live-") as tmp:
        collector_port, dashboard_port = free_port(), free_port()
        process, banner = start_pulse(Path(tmp), collector_port, dashboard_port)
        try:
            login = re.search(r"login\s+(\S+)\s+/\s+(\S+)", banner)
            site = re.search(r'data-site="([^"]+)"', banner)
            if not (login and site):
                raise SystemExit("unexpected banner:\n" + banner)
            return asyncio.run(
                _live_latency(
                    f"http://127.0.0.1:{collector_port}",
                    f"http://127.0.0.1:{dashboard_port}",
                    login[1],
                    login[2],
                    site[1],
                    beacons,
                    rate_per_s,
                )
            )
        finally:
            process.send_signal(signal.SIGINT)
            try:
                process.communicate(timeout=60)
            except subprocess.TimeoutExpired:
                process.kill()
                process.communicate()


async def _live_latency(
    collector: str, dashboard: str, email: str, password: str, site: str, beacons: int, rate_per_s: float
) -> dict[str, float]:
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = await browser.new_page(viewport={"width": 1280, "height": 900})
            await page.goto(f"{dashboard}/login")
            await page.fill("input[name=email]", email)
            await page.fill("input[name=password]", password)
            await page.click("button[type=submit]")
            await page.wait_for_url(f"{dashboard}/sites")
            await page.goto(f"{dashboard}/sites/{site}/realtime")
            await page.wait_for_function("document.getElementById('rt-status').textContent === 'live'")
            # Steady state, not start-up: the worker joins its consumer group and opens chDB on
            # the first events, which took seconds. The warm-up's rows are not measured.
            warm_up = await _send_steadily(collector, site, WARM_UP_BEACONS, rate_per_s, "/warm-up/")
            await _wait_for_rows(page, list(warm_up)[-1])
            sent = await _send_steadily(collector, site, beacons, rate_per_s)
            arrivals = await _wait_for_rows(page, list(sent)[-1])
        finally:
            await browser.close()
    listed = _listed(arrivals)
    on_screen = _on_screen(sent, listed)
    if not on_screen:
        raise SystemExit("no beacon reached the screen")
    latencies = [on_screen[path][0] - sent[path] for path in on_screen]
    pipeline = [on_screen[path][1] - sent[path] for path in on_screen]
    tick_to_screen = [shown - published for shown, published in on_screen.values()]
    figures = {
        "live_beacons": len(sent),
        "live_rate_per_s": rate_per_s,
        "live_listed": sum(1 for path in sent if path in listed),
        "live_missing": len(sent) - len(on_screen),
        "live_p50_ms": round(percentile(latencies, 0.5), 1),
        "live_p99_ms": round(percentile(latencies, 0.99), 1),
        "live_to_tick_p50_ms": round(percentile(pipeline, 0.5), 1),
        "live_to_tick_p99_ms": round(percentile(pipeline, 0.99), 1),
        "live_tick_to_screen_p50_ms": round(percentile(tick_to_screen, 0.5), 1),
        "live_tick_to_screen_p99_ms": round(percentile(tick_to_screen, 0.99), 1),
    }
    print(
        f"beacon → on screen ({len(on_screen)} of {len(sent)} beacons at {rate_per_s:g}/s, "
        f"{figures['live_listed']} as their own row): p50 {figures['live_p50_ms']} ms, p99 {figures['live_p99_ms']} ms"
    )
    print(
        f"  beacon → tick published p50 {figures['live_to_tick_p50_ms']} ms, p99 {figures['live_to_tick_p99_ms']} ms; "
        f"tick published → screen p50 {figures['live_tick_to_screen_p50_ms']} ms, "
        f"p99 {figures['live_tick_to_screen_p99_ms']} ms"
    )
    return figures


def _listed(arrivals: list[dict[str, Any]]) -> dict[str, tuple[float, float]]:
    """path → (shown, published) of the first tick that listed it."""
    listed: dict[str, tuple[float, float]] = {}
    for arrival in arrivals:
        for path in arrival["paths"]:
            listed.setdefault(path, (arrival["shown_ms"], arrival["published_ms"]))
    return listed


def _on_screen(
    sent: dict[str, float], listed: dict[str, tuple[float, float]]
) -> dict[str, tuple[float, float]]:
    """path → (shown, published) of the tick that brought each beacon to the page.

    A tick lists its batch's newest events only (RECENT_PER_TICK); a beacon beyond that moved the
    chart and the counters with the same tick without a row of its own. One visitor's beacons are
    counted in order, so that tick is the one listing the next beacon sent after it.
    """
    on_screen: dict[str, tuple[float, float]] = {}
    following: tuple[float, float] | None = None
    for path in reversed(list(sent)):
        following = listed.get(path, following)
        if following is not None:
            on_screen[path] = following
    return on_screen


async def _send_steadily(
    collector: str, site: str, beacons: int, rate_per_s: float, prefix: str = "/bench/"
) -> dict[str, float]:
    """path → send time (epoch ms); beacon i leaves at start + i / rate, whatever the answers take."""
    sent: dict[str, float] = {}
    failed: list[int] = []
    async with httpx.AsyncClient(
        base_url=collector, headers={"user-agent": BROWSER_UA}, timeout=30
    ) as client:

        async def send(i: int) -> None:
            path = f"{prefix}{i}"
            body = msgspec.json.encode({"s": site, "u": f"https://bench.example{path}"})
            sent[path] = time.time() * 1000
            response = await client.post("/api/event", content=body)
            if response.status_code != 202:
                failed.append(response.status_code)

        start = time.monotonic()
        tasks = []
        for i in range(beacons):
            await asyncio.sleep(max(0.0, start + i / rate_per_s - time.monotonic()))
            tasks.append(asyncio.create_task(send(i)))
        await asyncio.gather(*tasks)
    if failed:
        raise SystemExit(f"the collector refused {len(failed)} beacons: {sorted(set(failed))}")
    return sent


async def _wait_for_rows(page: Page, last: str) -> list[dict[str, Any]]:
    """The page's arrivals once the last beacon sent is listed (or DRAIN_S passed)."""
    deadline = time.monotonic() + DRAIN_S
    while True:
        arrivals: list[dict[str, Any]] = await page.evaluate("window.pulseLive.arrivals")
        if any(last in arrival["paths"] for arrival in arrivals) or time.monotonic() > deadline:
            return arrivals
        await asyncio.sleep(0.5)


# --- SSE fan-out ----------------------------------------------------------------------------------


def sse_fanout(clients: int = SSE_CLIENTS, ticks: int = SSE_TICKS) -> dict[str, float]:
    """`clients` live-view streams on one dashboard process, `ticks` ticks one second apart."""
    _raise_fd_limit(clients)
    with tempfile.TemporaryDirectory(prefix="pulse-bench-sse-") as tmp:
        home = Path(tmp)
        with embedded_valkey(home) as redis_url:
            env = {"PULSE_HOME": str(home), "REDIS_URL": redis_url, "PULSE_DASHBOARD_PORT": str(free_port())}
            site, tenant = asyncio.run(_prepare(env))
            url = f"http://127.0.0.1:{env['PULSE_DASHBOARD_PORT']}"
            dashboard = _start_dashboard(env, url, home / "dashboard.log")
            try:
                with _on_load_core():
                    return uvloop.run(_fan_out(url, redis_url, dashboard.pid, tenant, site, clients, ticks))
            finally:
                stop_server(dashboard)


def _start_dashboard(env: dict[str, str], url: str, log_path: Path) -> subprocess.Popen[bytes]:
    """`pulse run dashboard` on the server core, ready once subscribed to the ticks."""
    with log_path.open("ab") as log:
        process = subprocess.Popen(
            pinned(SERVER_CPU, [sys.executable, "-m", "pulse", "run", "dashboard"]),
            env={**os.environ, **env},
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    deadline = time.monotonic() + DASHBOARD_START_S
    while time.monotonic() < deadline and process.poll() is None:
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(f"{url}/healthz").json()["dependencies"]["redis_ticks"]:
                return process
        time.sleep(0.2)
    stop_server(process)
    raise SystemExit("the dashboard did not start:\n" + log_path.read_text(errors="replace")[-2000:])


def _raise_fd_limit(clients: int) -> None:
    """Each stream is a socket here and one in the dashboard, which inherits this limit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = clients + 1024
    if hard != resource.RLIM_INFINITY and hard < wanted:
        raise SystemExit(f"{clients} clients need {wanted} file descriptors; the hard limit is {hard}")
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, wanted), hard))


@contextlib.contextmanager
def _on_load_core() -> Iterator[None]:
    """The clients run on the load core, so they do not take the dashboard's core."""
    before = os.sched_getaffinity(0)
    if (os.cpu_count() or 1) > 1:
        os.sched_setaffinity(0, {int(LOAD_CPU)})
    try:
        yield
    finally:
        os.sched_setaffinity(0, before)


async def _prepare(env: dict[str, str]) -> tuple[str, str]:
    """Migrates the home and creates a tenant with a user and a site; returns (site, tenant)."""
    settings = load_settings(env)
    await migrate(settings)
    engine = create_engine(settings.effective_database_url)
    try:
        accounts = Accounts(engine)
        tenant = await accounts.create_tenant("Bench")
        await accounts.create_user("bench@example.com", PASSWORD, tenant.id, "owner")
        site = await accounts.create_site(tenant.id, "Bench", "bench.example")
    finally:
        await engine.dispose()
    return site.id, tenant.id


# A tick's own time: the first ts_ms of its data (Tick's fields are encoded in order, site_id first).
TICK_TIME = b'","ts_ms":'


class _Stream(asyncio.Protocol):
    """One live-view client on a raw socket: the tick's publish time is read from each frame's data."""

    def __init__(self, request: bytes, latencies: list[tuple[int, float]]) -> None:
        self._request = request
        self._latencies = latencies
        self._pending = b""
        self.ready = asyncio.get_running_loop().create_future()
        self.closed = asyncio.get_running_loop().create_future()
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports implement asyncio.Transport without deriving from it.
        self.transport = cast(asyncio.Transport, transport)
        self.transport.write(self._request)

    def data_received(self, data: bytes) -> None:
        # Cheap on purpose: this process reads every client's every tick, on one core.
        received_ms = time.time() * 1000
        if not self.ready.done():
            self._pending += data
            if not self._pending.startswith(b"HTTP/1.1 200 "):
                self.ready.set_exception(
                    RuntimeError(self._pending.split(b"\r\n", 1)[0].decode(errors="replace"))
                )
            elif b"event: ready" in self._pending:
                self.ready.set_result(None)
            return
        data = self._pending + data
        at = data.find(TICK_TIME)
        while at >= 0:
            start = at + len(TICK_TIME)
            end = data.find(b",", start)
            if end < 0:
                # The tick's time is cut by this read: the rest comes with the next one.
                self._pending = data[at:]
                return
            published_ms = int(data[start:end])
            self._latencies.append((published_ms, received_ms - published_ms))
            at = data.find(TICK_TIME, end)
        # A marker cut by this read starts in its last bytes; a whole one cannot fit there.
        self._pending = data[1 - len(TICK_TIME) :]

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.ready.done():
            self.ready.set_exception(exc or ConnectionError("closed before ready"))
        if not self.closed.done():
            self.closed.set_result(None)


async def _session_cookie(url: str) -> str:
    async with httpx.AsyncClient(base_url=url, timeout=30) as client:
        form = await client.get("/login")
        token = CSRF.search(form.text)
        assert token, "the login form carries a CSRF token"
        await client.post(
            "/login", data={"email": "bench@example.com", "password": PASSWORD, "_csrf_token": token[1]}
        )
        cookie = client.cookies.get("pulse_session")
    if not cookie:
        raise SystemExit("could not log in to the dashboard")
    return cookie


async def _fan_out(
    url: str, redis_url: str, pid: int, tenant: str, site: str, clients: int, ticks: int
) -> dict[str, float]:
    cookie = await _session_cookie(url)
    port = int(url.rsplit(":", 1)[1])
    request = (
        f"GET /sites/{site}/live HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
        f"Accept: text/event-stream\r\nCookie: pulse_session={cookie}\r\n\r\n"
    ).encode()
    idle_mb = _rss_mb(pid)
    received: list[tuple[int, float]] = []
    streams: list[_Stream] = []
    loop = asyncio.get_running_loop()
    gate = asyncio.Semaphore(CONNECT_PARALLEL)

    async def open_stream() -> None:
        async with gate:
            stream = _Stream(request, received)
            await loop.create_connection(lambda: stream, "127.0.0.1", port)
            streams.append(stream)
            await stream.ready

    started = time.monotonic()
    try:
        await asyncio.wait_for(asyncio.gather(*(open_stream() for _ in range(clients))), CONNECT_TIMEOUT_S)
        connect_s = time.monotonic() - started
        connected_mb = _rss_mb(pid)
        print(
            f"{clients} streams open in {connect_s:.1f} s; dashboard RSS {idle_mb:.0f} → {connected_mb:.0f} MB"
        )
        cpu_before, own_before = cpu_seconds(pid), cpu_seconds(os.getpid())
        redis = Redis.from_url(redis_url)
        try:
            channel = tick_channel(tenant, site)
            for n in range(ticks):
                await asyncio.sleep(SSE_TICK_EVERY_S)
                await redis.publish(channel, _tick(site, n))
            await asyncio.sleep(2 * SSE_TICK_EVERY_S)
            peak_mb = _rss_mb(pid, "VmHWM")
            cpu_per_tick_ms = (cpu_seconds(pid) - cpu_before) * 1000 / ticks
            own_per_tick_ms = (cpu_seconds(os.getpid()) - own_before) * 1000 / ticks
        finally:
            await redis.aclose()
    finally:
        for stream in streams:
            if stream.transport is not None:
                stream.transport.close()
    lost = sum(1 for stream in streams if stream.closed.done())
    latencies = [latency for _, latency in received]
    by_tick: dict[int, list[float]] = {}
    for published_ms, latency in received:
        by_tick.setdefault(published_ms, []).append(latency)
    worst = [round(max(values)) for _, values in sorted(by_tick.items())]
    print(f"slowest client of each tick (ms): {worst}")
    figures = {
        "sse_clients": clients,
        "sse_ticks": ticks,
        "sse_delivered": len(latencies),
        "sse_lost_clients": lost,
        "sse_rss_idle_mb": round(idle_mb, 1),
        "sse_rss_mb": round(peak_mb, 1),
        # What the streams themselves cost: the embedded dashboard also holds chDB (~360 MB here),
        # which a production dashboard, reading ClickHouse over HTTP, does not load.
        "sse_rss_added_mb": round(peak_mb - idle_mb, 1),
        "sse_p50_ms": round(percentile(latencies, 0.5), 1) if latencies else -1.0,
        "sse_p99_ms": round(percentile(latencies, 0.99), 1) if latencies else -1.0,
        "sse_max_ms": round(max(latencies), 1) if latencies else -1.0,
        "sse_server_cpu_ms_per_tick": round(cpu_per_tick_ms, 1),
        "sse_client_cpu_ms_per_tick": round(own_per_tick_ms, 1),
    }
    print(
        f"{ticks} ticks to {clients} clients: {len(latencies)} of {ticks * clients} delivered, {lost} clients lost; "
        f"publish → received p50 {figures['sse_p50_ms']} ms, p99 {figures['sse_p99_ms']} ms, "
        f"max {figures['sse_max_ms']} ms; CPU per tick: dashboard {figures['sse_server_cpu_ms_per_tick']} ms, "
        f"clients {figures['sse_client_cpu_ms_per_tick']} ms; "
        f"RSS peak {figures['sse_rss_mb']} MB"
    )
    return figures


def _tick(site: str, n: int) -> bytes:
    """A busy site's tick: the most events a tick lists, stamped with its publish time."""
    now_ms = int(time.time() * 1000)
    recent = [
        LiveEvent(
            ts_ms=now_ms - 20 * i,
            name="pageview",
            path=f"/blog/posts/{n}/{i}-a-reasonably-long-slug-for-a-page",
            source="Google",
            country="DE",
            device="desktop",
            browser="Chrome",
        )
        for i in range(RECENT_PER_TICK)
    ]
    tick = Tick(
        site_id=site,
        ts_ms=now_ms,
        pageviews=RECENT_PER_TICK,
        events=RECENT_PER_TICK,
        newest_ms=now_ms,
        visitors=1200,
        seconds=[(now_ms // 1000, RECENT_PER_TICK)],
        recent=recent,
    )
    return msgspec.json.encode(tick)


def _rss_mb(pid: int, field: str = "VmRSS") -> float:
    """Resident memory now (VmRSS), or its peak since the process started (VmHWM)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    raise SystemExit(f"no {field} for pid {pid}")


def main() -> None:
    which = sys.argv[1:] or ["live", "sse"]
    figures: dict[str, float] = {}
    if "live" in which:
        figures |= live_latency()
    if "sse" in which:
        figures |= sse_fanout()
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
