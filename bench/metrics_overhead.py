"""Collector throughput with metrics on and off, measured in the same run.

Starts a Tansu broker and `pulse run collector` (one process, as in production) and
drives it with wrk from a separate process: single-event POSTs to /api/event over
keep-alive connections. Runs alternate on/off/on/off so drift in the machine's load
hits both sides. The last line of output is one JSON object.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

from pulse.embedded.services import free_port, start_broker
from pulse.migrate import migrate
from pulse.oltp.accounts import Accounts
from pulse.oltp.db import create_engine
from pulse.settings import load_settings

DURATION_S = int(os.environ.get("BENCH_DURATION_S", "8"))
ROUNDS = int(os.environ.get("BENCH_ROUNDS", "5"))
# The collector gets core 0 to itself; wrk and the broker share the other. Without pinning,
# the three trade cores and the same configuration varied by 25% between rounds.
COLLECTOR_CPU, LOAD_CPU = "0", "1"
CONNECTIONS = 64

WRK_SCRIPT = """
wrk.method = "POST"
wrk.headers["Content-Type"] = "text/plain"
wrk.body = '{"s": "%s", "u": "https://bench.example/pricing?utm_source=news", "r": "https://www.google.com/"}'
"""


async def prepare(home: Path, broker: str) -> str:
    settings = load_settings({"PULSE_HOME": str(home), "KAFKA_BOOTSTRAP_SERVERS": broker})
    await migrate(settings)
    engine = create_engine(settings.effective_database_url)
    accounts = Accounts(engine)
    tenant = await accounts.create_tenant("Bench")
    site = await accounts.create_site(tenant.id, "Bench", "bench.example")
    await engine.dispose()
    return site.id


def _pinned(cpu: str, argv: list[str]) -> list[str]:
    return ["taskset", "-c", cpu, *argv] if shutil.which("taskset") and (os.cpu_count() or 1) > 1 else argv


def run_collector(home: Path, broker: str, metrics: bool) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    env = {
        **os.environ,
        "PULSE_HOME": str(home),
        "KAFKA_BOOTSTRAP_SERVERS": broker,
        "PULSE_COLLECTOR_PORT": str(port),
        "PULSE_METRICS_ENABLED": str(metrics).lower(),
    }
    process = subprocess.Popen(
        _pinned(COLLECTOR_CPU, [sys.executable, "-m", "pulse", "run", "collector"]),
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{url}/healthz").json()["dependencies"]["kafka"]:
                return process, url
        except (httpx.HTTPError, KeyError, ValueError):
            pass
        time.sleep(0.1)
    process.kill()
    raise SystemExit("collector did not become ready")


def drive(url: str, script: Path) -> tuple[float, int]:
    """Requests per second, and how many answers were not 2xx or failed at the socket."""
    result = subprocess.run(
        _pinned(
            LOAD_CPU,
            ["wrk", "-t1", f"-c{CONNECTIONS}", f"-d{DURATION_S}s", "-s", str(script), f"{url}/api/event"],
        ),
        capture_output=True,
        text=True,
        check=True,
    )
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", result.stdout)[1])  # type: ignore[index]
    non_2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", result.stdout)
    sockets = re.search(
        r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", result.stdout
    )
    refused = (int(non_2xx[1]) if non_2xx else 0) + (sum(map(int, sockets.groups())) if sockets else 0)
    return rps, refused


def main() -> None:
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is missing: make bench installs Debian's wrk package")
    with tempfile.TemporaryDirectory(prefix="pulse-bench-") as tmp:
        home = Path(tmp)
        broker, bootstrap = start_broker(home)
        if (os.cpu_count() or 1) > 1:
            os.sched_setaffinity(broker.process.pid, {int(LOAD_CPU)})
        try:
            site = asyncio.run(prepare(home, bootstrap))
            script = home / "post.lua"
            script.write_text(WRK_SCRIPT % site)
            figures: dict[bool, list[float]] = {True: [], False: []}
            for _ in range(ROUNDS):
                for metrics in (True, False):
                    process, url = run_collector(home, bootstrap, metrics)
                    try:
                        drive(url, script)  # warm-up: connections, the site cache, the producer's batches
                        rps, refused = drive(url, script)
                    finally:
                        process.terminate()
                        process.wait(timeout=20)
                    print(f"metrics {'on ' if metrics else 'off'}  {rps:8.0f} req/s")
                    if refused:
                        raise SystemExit(
                            f"{refused} requests were refused or failed; figures are not comparable"
                        )
                    figures[metrics].append(rps)
        finally:
            broker.stop()
    on, off = statistics.median(figures[True]), statistics.median(figures[False])
    cost = 1 - on / off
    print(f"\nmedian of {ROUNDS}: metrics on {on:.0f} req/s, off {off:.0f} req/s, cost {cost:.1%}")
    print(json.dumps({"metrics_on_rps": round(on), "metrics_off_rps": round(off), "cost": round(cost, 4)}))


if __name__ == "__main__":
    main()
