"""Events/s through HAProxy with one collector process and with two, measured in the same run.

The production shape puts collectors behind HAProxy (deploy/haproxy/haproxy.cfg, the file
compose uses), and scaling the collector out means adding processes. This measures what a
second process buys on this machine: wrk drives single-event requests (POST /api/event) and
batches of BATCH_SIZE (POST /api/events) through the same HAProxy, first with both of its
server lines naming one collector, then naming two. The one-collector figure is the baseline
and `ratio` is two over one. The collectors are `pulse run collector` as production runs them
(acks=all to an embedded Tansu broker, metrics on, rate limits off), pinned one per core;
HAProxy, wrk and the broker are not pinned, so they take their share from both cores. On a
2-core machine everything competes for the same two cores, so the ratio says how much of a
second core a second collector gets here, not how it scales on a larger server.

Rounds alternate one / two so that drift in the machine's load hits both; figures are medians.
Every answer must be 202, and every event answered must be readable from the broker afterwards;
a run that breaks either is invalid (exit 1). The last line of output is one JSON object.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

from collector import BATCH_SIZE, beacon, check_accepts, events_in_broker
from harness import (
    HEADERS,
    RATE_LIMITS_OFF,
    embedded_broker,
    lua_post,
    prepare_home,
    require_wrk,
    start_collector,
    stop_server,
    wrk,
)
from pulse.embedded.services import free_port
from pulse.settings import Settings

DURATION_S = float(os.environ.get("BENCH_DURATION_S", "8"))
ROUNDS = int(os.environ.get("BENCH_ROUNDS", "2"))
WARMUP_S = float(os.environ.get("BENCH_WARMUP_S", "3"))
CONNECTIONS = int(os.environ.get("BENCH_CONNECTIONS", "64"))
HAPROXY_CFG = Path(__file__).resolve().parents[1] / "deploy" / "haproxy" / "haproxy.cfg"
HAPROXY = "/usr/sbin/haproxy"


@contextmanager
def haproxy(collectors: list[int], home: Path) -> Iterator[str]:
    """HAProxy with the shipped config in front of these collector ports; yields its URL."""
    port = free_port()
    servers = [f"127.0.0.1:{p}" for p in collectors] * (2 if len(collectors) == 1 else 1)
    env = {
        **os.environ,
        "PULSE_LB_COLLECTOR_BIND": f"127.0.0.1:{port}",
        "PULSE_LB_DASHBOARD_BIND": f"127.0.0.1:{free_port()}",
        "PULSE_LB_STATS_BIND": f"127.0.0.1:{free_port()}",
        "PULSE_COLLECTOR_1": servers[0],
        "PULSE_COLLECTOR_2": servers[1],
        # No dashboards in this run: both lines name a port nothing listens on, out of rotation.
        "PULSE_DASHBOARD_1": f"127.0.0.1:{free_port()}",
        "PULSE_DASHBOARD_2": f"127.0.0.1:{free_port()}",
    }
    with (home / "logs" / "haproxy.log").open("ab") as log:
        process = subprocess.Popen([HAPROXY, "-db", "-f", str(HAPROXY_CFG)], env=env, stdout=log, stderr=log)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                # Both server lines up: a first health check has passed for every collector.
                if all(httpx.get(f"{url}/healthz").status_code == 200 for _ in range(4)):
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline or process.poll() is not None:
                raise SystemExit("haproxy did not come up; see logs/haproxy.log")
            time.sleep(0.2)
        time.sleep(2.5)  # rise 2 at inter 1s: every replica in rotation
        yield url
    finally:
        process.terminate()
        process.wait(10)


def measure(url: str, script: Path, batch: int) -> tuple[float, int, int]:
    """(events/s, events answered 202 including warm-up, refused requests)."""
    warm = wrk(url, script, WARMUP_S, CONNECTIONS)
    run = wrk(url, script, DURATION_S, CONNECTIONS)
    answered = (warm.requests - warm.non_2xx + run.requests - run.non_2xx) * batch
    return run.rps * batch, answered, warm.refused + run.refused


def main() -> None:
    require_wrk()
    if not Path(HAPROXY).exists():
        raise SystemExit("needs Debian's haproxy: scripts/setup.sh --test installs it")
    figures: dict[str, list[float]] = {
        "one_single": [],
        "two_single": [],
        "one_batched": [],
        "two_batched": [],
    }
    answered, refused = 0, 0
    with tempfile.TemporaryDirectory(prefix="pulse-bench-") as tmp:
        home = Path(tmp)
        with embedded_broker(home) as bootstrap:
            site = prepare_home(home, bootstrap)
            single_body = json.dumps(beacon(site))
            batch_body = json.dumps([beacon(site)] * BATCH_SIZE)
            single, batched = home / "single.lua", home / "batch.lua"
            single.write_text(lua_post(single_body, HEADERS))
            batched.write_text(lua_post(batch_body, HEADERS))
            print(
                f"{ROUNDS} rounds of 1 then 2 collectors behind HAProxy; wrk 1 thread, {CONNECTIONS} "
                f"connections, {WARMUP_S:g} s warm-up + {DURATION_S:g} s measured per figure; {os.cpu_count()} cores\n"
            )
            for round_ in range(1, ROUNDS + 1):
                for count, name in ((1, "one"), (2, "two")):
                    ports = [free_port() for _ in range(count)]
                    processes = [
                        start_collector(home, bootstrap, port, RATE_LIMITS_OFF, cpu=str(i))
                        for i, port in enumerate(ports)
                    ]
                    try:
                        with haproxy(ports, home) as url:
                            check_accepts(f"{url}/api/event", single_body.encode(), 1)
                            check_accepts(f"{url}/api/events", batch_body.encode(), BATCH_SIZE)
                            answered += 1 + BATCH_SIZE
                            eps, kept, bad = measure(f"{url}/api/event", single, 1)
                            figures[f"{name}_single"].append(eps)
                            answered, refused = answered + kept, refused + bad
                            eps, kept, bad = measure(f"{url}/api/events", batched, BATCH_SIZE)
                            figures[f"{name}_batched"].append(eps)
                            answered, refused = answered + kept, refused + bad
                    finally:
                        for process in processes:
                            stop_server(process)
                    print(
                        f"round {round_}  {count} collector{'s' if count > 1 else ' '}  "
                        f"single {figures[f'{name}_single'][-1]:7.0f} events/s  "
                        f"batched {figures[f'{name}_batched'][-1]:7.0f} events/s"
                    )
            in_broker = events_in_broker(Settings(kafka_bootstrap_servers=bootstrap))

    med = {key: statistics.median(values) for key, values in figures.items()}
    lost = max(0, answered - in_broker)
    result = {
        "one_collector_eps": round(med["one_single"]),
        "two_collectors_eps": round(med["two_single"]),
        "ratio": round(med["two_single"] / med["one_single"], 3),
        "one_collector_batched_eps": round(med["one_batched"]),
        "two_collectors_batched_eps": round(med["two_batched"]),
        "batched_ratio": round(med["two_batched"] / med["one_batched"], 3),
        "refused": refused,
        "events_answered": answered,
        "events_in_broker": in_broker,
        "valid": refused == 0 and lost == 0,
    }
    print()
    print(json.dumps(result))
    if not result["valid"]:
        raise SystemExit(1)


if __name__ == "__main__":
    main()
