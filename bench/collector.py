"""Collector throughput and latency, next to a bare Litestar endpoint measured in the same run.

Measures, with wrk as the load generator in its own process on loopback:
  * single-event requests/s and p50/p99 latency: POST /api/event, one beacon per request;
  * batched events/s: POST /api/events, an array of BATCH_SIZE beacons per request;
  * the same single-request figures for bench/bare_app.py, a Litestar handler that reads
    the body and answers 202, and the ratio of the collector's rate to it.

Why the ratio is fair: both servers are one uvicorn process pinned to the same core with
the same event loop and HTTP parser (read from the running collector, not assumed), get
byte-identical requests over the same number of keep-alive connections from the same wrk
pinned to the other core, and rounds alternate bare/single/batched so drift in the
machine's load hits all three; figures are medians over the rounds. The collector is run
as production runs it (`pulse run collector`, metrics on, acks=all to an embedded Tansu
broker), with its rate limits off so the figure is the pipeline's and not a limiter's.

Every answer must be 202 with the right "accepted" count (wrk counts non-2xx answers; a
request by hand checks the rest) and every event answered must be readable from the
broker afterwards; a run that breaks either is reported as invalid. Req/s depends on the
server getting its core; the server's CPU time per request, also printed, does not, so it
still compares the two servers when the machine is busy. Latencies are wrk's closed-loop
figures at saturation, so they are mostly queueing: p50 is close to connections / req/s.

The last line of output is one JSON object. The exit code is 0 whenever the run was valid,
whether or not the targets were met (this reports, it does not gate), and 1 for an invalid run.
"""

from __future__ import annotations

import asyncio
import json
import os
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from subprocess import Popen

import httpx
from aiokafka import AIOKafkaConsumer, TopicPartition

from harness import (
    HEADERS,
    LOAD_CPU,
    RATE_LIMITS_OFF,
    SERVER_CPU,
    WrkResult,
    cpu_seconds,
    embedded_broker,
    lua_post,
    prepare_home,
    require_wrk,
    start_collector,
    start_server,
    stop_server,
    wrk,
)
from pulse.embedded.services import free_port
from pulse.settings import Settings

DURATION_S = float(os.environ.get("BENCH_DURATION_S", "8"))
ROUNDS = int(os.environ.get("BENCH_ROUNDS", "3"))
# Long enough to open the connections, fill the site cache and the producer's batches;
# shorter than a measured run because nothing is learnt from it.
WARMUP_S = float(os.environ.get("BENCH_WARMUP_S", "3"))
CONNECTIONS = int(os.environ.get("BENCH_CONNECTIONS", "64"))
BATCH_SIZE = 20

TARGET_SINGLE_RPS = 4_000
TARGET_BATCHED_EPS = 40_000
TARGET_RATIO = 0.6
# Below this share of its core, a server was not the bottleneck of its run.
LOW_CORE_SHARE = 0.9

BARE_APP_DIR = Path(__file__).resolve().parent


def beacon(site: str) -> dict[str, str | int]:
    return {
        "s": site,
        "u": "https://bench.example/pricing?utm_source=news",
        "r": "https://www.google.com/",
        "w": 1440,
    }


@dataclass(frozen=True)
class Serving:
    """How uvicorn serves the collector, so the bare endpoint can be served the same way."""

    loop: str
    http: str


def serving_of(pid: int) -> Serving:
    """Read the event loop and HTTP parser from the libraries the running collector has loaded.

    `pulse run` picks the loop itself (several servers share it, so uvicorn does not), and
    the parser is uvicorn's "auto" choice. Reading both from the process keeps the
    comparison fair whenever either changes.
    """
    maps = Path(f"/proc/{pid}/maps").read_text()
    return Serving(
        loop="uvloop" if "/uvloop/loop." in maps else "asyncio",
        http="httptools" if "/httptools/parser/" in maps else "h11",
    )


def start_bare(home: Path, port: int, serving: Serving) -> Popen[bytes]:
    url = f"http://127.0.0.1:{port}/api/event"

    def ready() -> bool:
        return httpx.post(url, content=b"{}").status_code == 202

    argv = [
        sys.executable, "-m", "uvicorn", "--app-dir", str(BARE_APP_DIR), "bare_app:app",
        "--host", "127.0.0.1", "--port", str(port), "--workers", "1",
        "--no-access-log", "--log-level", "warning", "--lifespan", "on",
        "--loop", serving.loop, "--http", serving.http,
        # As `pulse run` serves: no X-Forwarded-For rewriting by uvicorn, no Server header.
        "--no-proxy-headers", "--no-server-header",
    ]  # fmt: skip
    return start_server("bare endpoint", argv, {}, home / "logs" / "bare.log", ready)


def check_accepts(url: str, body: bytes, accepted: int) -> None:
    """One request by hand first: wrk counts non-2xx answers, but a 200 would pass it."""
    response = httpx.post(url, content=body, headers=HEADERS)
    if response.status_code != 202 or response.json() != {"accepted": accepted}:
        raise SystemExit(
            f"POST {url} answered {response.status_code} {response.text!r}, "
            f'not 202 {{"accepted": {accepted}}}'
        )


async def _count_events(settings: Settings) -> int:
    # Counted by reading the topic, not from its end offsets: Tansu's ListOffsets answers
    # up to a batch short of the last record it serves, which would look like lost events.
    consumer = AIOKafkaConsumer(
        bootstrap_servers=settings.kafka_bootstrap_servers,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
    )
    await consumer.start()
    try:
        topic = settings.topic_raw
        consumer.assign([TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic) or set()])
        count, quiet = 0, 0
        while quiet < 2:
            fetched = await consumer.getmany(timeout_ms=500, max_records=50_000)
            count += sum(len(records) for records in fetched.values())
            quiet = 0 if fetched else quiet + 1
        return count
    finally:
        await consumer.stop()


def events_in_broker(settings: Settings) -> int:
    return asyncio.run(_count_events(settings))


@dataclass(frozen=True)
class Measured:
    wrk: WrkResult
    server_cpu: float  # share of one core the server used during the measured run
    answered_events: int  # events answered 202, warm-up included, that the broker must hold


def measure(url: str, script: Path, pid: int, batch: int = 1) -> Measured:
    warm = wrk(url, script, WARMUP_S, CONNECTIONS)
    before_cpu, started = cpu_seconds(pid), time.monotonic()
    result = wrk(url, script, DURATION_S, CONNECTIONS, latency=True)
    cpu = (cpu_seconds(pid) - before_cpu) / (time.monotonic() - started)
    answered = (warm.requests - warm.non_2xx + result.requests - result.non_2xx) * batch
    return Measured(result, cpu, answered)


def ms(value: float | None) -> str:
    return f"{value:.2f}" if value is not None else "n/a"


def median(values: list[float | None]) -> float | None:
    known = [v for v in values if v is not None]
    return statistics.median(known) if known else None


def main() -> None:
    require_wrk()
    print(
        "rate limits off (PULSE_RATE_LIMIT_IP_PER_S=0, PULSE_RATE_LIMIT_SITE_PER_S=0): "
        "the figures are the ingest pipeline's, not a limiter's"
    )
    runs: dict[str, list[Measured]] = {"bare": [], "single": [], "batched": []}
    with tempfile.TemporaryDirectory(prefix="pulse-bench-") as tmp:
        home = Path(tmp)
        with embedded_broker(home) as bootstrap:
            site = prepare_home(home, bootstrap)
            settings = Settings(kafka_bootstrap_servers=bootstrap)
            single_body = json.dumps(beacon(site))
            batch_body = json.dumps([beacon(site)] * BATCH_SIZE)
            single_script, batch_script = home / "single.lua", home / "batch.lua"
            single_script.write_text(lua_post(single_body, HEADERS))
            batch_script.write_text(lua_post(batch_body, HEADERS))

            # A first collector only to learn how it serves: the bare endpoint runs first in each round.
            port = free_port()
            probe = start_collector(home, bootstrap, port, RATE_LIMITS_OFF)
            try:
                serving = serving_of(probe.pid)
            finally:
                stop_server(probe)
            print(
                f"both servers: one uvicorn process on core {SERVER_CPU}, {serving.loop} loop, "
                f"{serving.http}; wrk (1 thread, {CONNECTIONS} connections) and the broker on core {LOAD_CPU}"
            )
            print(
                f"{ROUNDS} rounds of bare / single / batched({BATCH_SIZE}), "
                f"{WARMUP_S:g} s warm-up + {DURATION_S:g} s measured each\n"
            )

            for round_ in range(1, ROUNDS + 1):
                port = free_port()
                bare_url = f"http://127.0.0.1:{port}/api/event"
                process = start_bare(home, port, serving)
                try:
                    check_accepts(bare_url, single_body.encode(), 1)
                    runs["bare"].append(measure(bare_url, single_script, process.pid))
                finally:
                    stop_server(process)

                port = free_port()
                base = f"http://127.0.0.1:{port}/api"
                process = start_collector(home, bootstrap, port, RATE_LIMITS_OFF)
                try:
                    check_accepts(f"{base}/event", single_body.encode(), 1)
                    check_accepts(f"{base}/events", batch_body.encode(), BATCH_SIZE)
                    runs["single"].append(measure(f"{base}/event", single_script, process.pid))
                    runs["batched"].append(measure(f"{base}/events", batch_script, process.pid, BATCH_SIZE))
                finally:
                    stop_server(process)

                bare, single, batched = (runs[k][-1] for k in ("bare", "single", "batched"))
                print(
                    f"round {round_}  bare {bare.wrk.rps:7.0f} req/s (p99 {ms(bare.wrk.p99_ms)} ms, "
                    f"core {bare.server_cpu:.0%})  single {single.wrk.rps:6.0f} req/s "
                    f"(p50 {ms(single.wrk.p50_ms)} ms, p99 {ms(single.wrk.p99_ms)} ms, "
                    f"core {single.server_cpu:.0%})  batched {batched.wrk.rps * BATCH_SIZE:7.0f} events/s "
                    f"(core {batched.server_cpu:.0%})"
                )

            # Every 202 must be a kept event: a filter that answers 202 and drops (as the bot
            # filter does) would otherwise pass for throughput. The hand-made probes count too.
            answered = sum(m.answered_events for m in runs["single"] + runs["batched"])
            answered += ROUNDS * (1 + BATCH_SIZE)
            in_broker = events_in_broker(settings)

    report(runs, answered, in_broker)


def report(runs: dict[str, list[Measured]], answered: int, in_broker: int) -> None:
    def rps(kind: str) -> float:
        return statistics.median(m.wrk.rps for m in runs[kind])

    def cpu_us(kind: str, per: int = 1) -> float:
        """Server CPU time per request (or per event): unlike req/s, it holds when the core is shared."""
        return statistics.median(m.server_cpu / (m.wrk.rps * per) * 1e6 for m in runs[kind])

    single_rps, bare_rps = rps("single"), rps("bare")
    batched_eps = rps("batched") * BATCH_SIZE
    ratio = single_rps / bare_rps
    all_runs = [m for kind in runs.values() for m in kind]
    non_2xx = sum(m.wrk.non_2xx for m in all_runs)
    socket_errors = sum(m.wrk.socket_errors for m in all_runs)
    # Requests in flight when wrk stopped are not in its count but may be kept: more is fine.
    events_short = max(0, answered - in_broker)
    lowest_cpu = min(m.server_cpu for m in all_runs)
    figures: dict[str, float | int | bool | None] = {
        "single_rps": round(single_rps),
        "batched_eps": round(batched_eps),
        "p50_ms": median([m.wrk.p50_ms for m in runs["single"]]),
        "p99_ms": median([m.wrk.p99_ms for m in runs["single"]]),
        "bare_rps": round(bare_rps),
        "bare_p50_ms": median([m.wrk.p50_ms for m in runs["bare"]]),
        "bare_p99_ms": median([m.wrk.p99_ms for m in runs["bare"]]),
        "ratio": round(ratio, 3),
        "batched_rps": round(rps("batched")),
        "batched_p99_ms": median([m.wrk.p99_ms for m in runs["batched"]]),
        "single_cpu_us_per_request": round(cpu_us("single"), 1),
        "batched_cpu_us_per_event": round(cpu_us("batched", BATCH_SIZE), 1),
        "bare_cpu_us_per_request": round(cpu_us("bare"), 1),
        "cpu_ratio": round(cpu_us("bare") / cpu_us("single"), 3),
        "collector_core_share_single": round(statistics.median(m.server_cpu for m in runs["single"]), 2),
        "collector_core_share_batched": round(statistics.median(m.server_cpu for m in runs["batched"]), 2),
        "bare_core_share": round(statistics.median(m.server_cpu for m in runs["bare"]), 2),
        "batch_size": BATCH_SIZE,
        "duration_s": DURATION_S,
        "warmup_s": WARMUP_S,
        "connections": CONNECTIONS,
        "rounds": ROUNDS,
        "non_2xx": non_2xx,
        "socket_errors": socket_errors,
        "events_answered": answered,
        "events_in_broker": in_broker,
        "events_not_in_broker": events_short,
    }
    valid = non_2xx == 0 and socket_errors == 0 and events_short == 0
    figures["valid"] = valid

    def verdict(ok: bool) -> str:
        return "pass" if ok else "FAIL"

    def row(name: str, measured: str, target: str = "", ok: bool | None = None) -> None:
        print(f"  {name:<36}{measured:>14}  {target:>10}  {'' if ok is None else verdict(ok)}".rstrip())

    print(f"\nmedians of {ROUNDS} rounds")
    row("figure", "measured", "target")
    row("single-event requests/s", f"{single_rps:,.0f}", ">= 4,000", single_rps >= TARGET_SINGLE_RPS)
    row(
        f"batched events/s (x{BATCH_SIZE})",
        f"{batched_eps:,.0f}",
        ">= 40,000",
        batched_eps >= TARGET_BATCHED_EPS,
    )
    row("ratio single / bare", f"{ratio:.3f}", ">= 0.6", ratio >= TARGET_RATIO)
    row("single p50 / p99 (ms)", f"{ms(figures['p50_ms'])} / {ms(figures['p99_ms'])}")
    row("bare requests/s", f"{bare_rps:,.0f}")
    row("bare p50 / p99 (ms)", f"{ms(figures['bare_p50_ms'])} / {ms(figures['bare_p99_ms'])}")
    row(
        "server CPU µs: single / bare",
        f"{cpu_us('single'):.0f} / {cpu_us('bare'):.0f}",
    )
    row("server CPU µs per event, batched", f"{cpu_us('batched', BATCH_SIZE):.0f}")
    if lowest_cpu < LOW_CORE_SHARE:
        print(
            f"\nnote: a server used only {lowest_cpu:.0%} of its core in one run, so it waited on something "
            "else (the load core, the broker, or other work on this machine); the CPU µs lines still "
            "compare the two servers' own work."
        )
    if not valid:
        print(
            "\n!!! INVALID RUN: "
            f"{non_2xx} answers were not 2xx, {socket_errors} requests failed at the socket, "
            f"{events_short} events answered 202 are not in the broker. The figures above are not "
            "the collector's throughput. !!!\n"
        )
    print(json.dumps(figures))
    if not valid:
        raise SystemExit(1)


if __name__ == "__main__":
    main()
