"""Shared plumbing for the collector benchmarks: a broker, a site, pinned servers and wrk.

Every server under test gets core 0 to itself; wrk and the broker share core 1. Without
pinning, the processes traded cores and the same configuration varied by 25% between rounds.
"""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx

from pulse.embedded.services import start_broker, start_valkey
from pulse.migrate import migrate
from pulse.oltp.accounts import Accounts
from pulse.oltp.db import create_engine
from pulse.settings import load_settings

SERVER_CPU, LOAD_CPU = "0", "1"
READY_TIMEOUT_S = 30.0


USER_AGENT = (
    "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36"
)
# What a browser's fetch() with a string body sends, as tracker-js does. Without a browser's
# User-Agent the collector drops the beacon as a bot and publishes nothing.
HEADERS = {"Content-Type": "text/plain;charset=UTF-8", "User-Agent": USER_AGENT}
# 0 turns a limit off: one wrk address would otherwise be throttled as a single visitor.
RATE_LIMITS_OFF = {"PULSE_RATE_LIMIT_IP_PER_S": "0", "PULSE_RATE_LIMIT_SITE_PER_S": "0"}


def pinned(cpu: str, argv: list[str]) -> list[str]:
    return ["taskset", "-c", cpu, *argv] if shutil.which("taskset") and (os.cpu_count() or 1) > 1 else argv


def require_wrk() -> None:
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is missing: make bench installs Debian's wrk package")


@contextmanager
def embedded_broker(home: Path) -> Iterator[str]:
    """A Tansu broker on the load core, so it never competes with the server under test."""
    broker, bootstrap = start_broker(home)
    if (os.cpu_count() or 1) > 1:
        os.sched_setaffinity(broker.process.pid, {int(LOAD_CPU)})
    try:
        yield bootstrap
    finally:
        broker.stop()


@contextmanager
def embedded_valkey(home: Path) -> Iterator[str]:
    """A Valkey on the load core, as `pulse up` starts it; yields its redis:// URL."""
    valkey, url = start_valkey(home)
    if (os.cpu_count() or 1) > 1:
        os.sched_setaffinity(valkey.process.pid, {int(LOAD_CPU)})
    try:
        yield url
    finally:
        valkey.stop()


def cpu_seconds(pid: int) -> float:
    """User and system time of pid so far, all its threads included."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def prepare(home: Path, broker: str) -> str:
    """Migrate PULSE_HOME and create the tenant and site the beacons name; returns the site key."""
    settings = load_settings({"PULSE_HOME": str(home), "KAFKA_BOOTSTRAP_SERVERS": broker})
    await migrate(settings)
    engine = create_engine(settings.effective_database_url)
    accounts = Accounts(engine)
    tenant = await accounts.create_tenant("Bench")
    site = await accounts.create_site(tenant.id, "Bench", "bench.example")
    await engine.dispose()
    return site.id


def prepare_home(home: Path, broker: str) -> str:
    return asyncio.run(prepare(home, broker))


def start_server(
    name: str,
    argv: list[str],
    env: Mapping[str, str],
    log_path: Path,
    ready: Callable[[], bool],
    cpu: str = SERVER_CPU,
) -> subprocess.Popen[bytes]:
    """Start argv on core `cpu` and wait until ready() holds; its output goes to log_path."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with log_path.open("ab") as log:
        process = subprocess.Popen(
            pinned(cpu, argv), env={**os.environ, **env}, stdout=log, stderr=subprocess.STDOUT
        )
    deadline = time.monotonic() + READY_TIMEOUT_S
    while time.monotonic() < deadline and process.poll() is None:
        try:
            if ready():
                return process
        except (httpx.HTTPError, KeyError, ValueError):
            pass
        time.sleep(0.1)
    process.kill()
    process.wait()
    tail = "\n".join(log_path.read_text(errors="replace").splitlines()[-20:])
    raise SystemExit(f"{name} did not become ready\n{tail}")


def stop_server(process: subprocess.Popen[bytes]) -> None:
    process.terminate()
    try:
        process.wait(timeout=20)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def start_collector(
    home: Path, broker: str, port: int, env: Mapping[str, str] | None = None, cpu: str = SERVER_CPU
) -> subprocess.Popen[bytes]:
    """`pulse run collector`, exactly as production runs it, ready once its producer is connected."""
    url = f"http://127.0.0.1:{port}"

    def ready() -> bool:
        return bool(httpx.get(f"{url}/healthz").json()["dependencies"]["kafka"])

    return start_server(
        "collector",
        [sys.executable, "-m", "pulse", "run", "collector"],
        {
            "PULSE_HOME": str(home),
            "KAFKA_BOOTSTRAP_SERVERS": broker,
            "PULSE_COLLECTOR_PORT": str(port),
            **(env or {}),
        },
        home / "logs" / "collector.log",
        ready,
        cpu,
    )


@dataclass(frozen=True)
class WrkResult:
    rps: float
    requests: int
    # Answers that were not 2xx or 3xx, and requests that failed at the socket (connect,
    # read, write, timeout): either means the figure is not the one asked for.
    non_2xx: int
    socket_errors: int
    # From --latency; None when wrk ran without it.
    p50_ms: float | None
    p99_ms: float | None

    @property
    def refused(self) -> int:
        return self.non_2xx + self.socket_errors


_UNIT_MS = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60_000.0, "h": 3_600_000.0}


def _percentile_ms(output: str, q: int) -> float | None:
    found = re.search(rf"^\s+{q}%\s+([\d.]+)(us|ms|s|m|h)\s*$", output, re.MULTILINE)
    return float(found[1]) * _UNIT_MS[found[2]] if found else None


def wrk(url: str, script: Path, duration_s: float, connections: int, latency: bool = False) -> WrkResult:
    """One closed-loop wrk run on the load core: one thread, `connections` keep-alive connections."""
    argv = ["wrk", "-t1", f"-c{connections}", f"-d{duration_s:g}s", "-s", str(script)]
    if latency:
        argv.append("--latency")
    result = subprocess.run(pinned(LOAD_CPU, [*argv, url]), capture_output=True, text=True, check=True)
    if result.stderr.strip():
        # A script wrk cannot load is reported on stderr only; wrk then sends plain GETs and exits 0.
        raise SystemExit(f"wrk failed: {result.stderr.strip()}")
    out = result.stdout
    rps = re.search(r"Requests/sec:\s+([\d.]+)", out)
    requests = re.search(r"(\d+) requests in", out)
    if rps is None or requests is None:
        raise SystemExit(f"could not read wrk's output:\n{out}\n{result.stderr}")
    non_2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    sockets = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    return WrkResult(
        rps=float(rps[1]),
        requests=int(requests[1]),
        non_2xx=int(non_2xx[1]) if non_2xx else 0,
        socket_errors=sum(map(int, sockets.groups())) if sockets else 0,
        p50_ms=_percentile_ms(out, 50) if latency else None,
        p99_ms=_percentile_ms(out, 99) if latency else None,
    )


def _lua_string(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


def lua_post(body: str, headers: Mapping[str, str]) -> str:
    """A wrk script that POSTs body with headers."""
    lines = [
        'wrk.method = "POST"',
        *(f"wrk.headers[{_lua_string(k)}] = {_lua_string(v)}" for k, v in headers.items()),
    ]
    return "\n".join([*lines, f"wrk.body = {_lua_string(body)}", ""])
