"""Debian's HAProxy with the shipped deploy/haproxy/haproxy.cfg, in front of collector processes.

Each collector is `pulse run collector`, a process of its own on the test stack's broker and
OLTP store, as a replica is in production. Everything binds 127.0.0.1 on free ports.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from pulse.embedded.services import free_port
from pulse.settings import Settings

REPO = Path(__file__).resolve().parents[1]
HAPROXY_CFG = REPO / "deploy" / "haproxy" / "haproxy.cfg"
HAPROXY = shutil.which("haproxy") or "/usr/sbin/haproxy"

needs_haproxy = pytest.mark.skipif(
    not Path(HAPROXY).exists(),
    reason="Debian's haproxy is not installed (scripts/setup.sh --test installs it)",
)


def _environment(settings: Settings, port: int) -> dict[str, str]:
    env = {
        key: value
        for key, value in os.environ.items()
        if key not in ("KAFKA_BOOTSTRAP_SERVERS", "CLICKHOUSE_URL", "REDIS_URL", "DATABASE_URL")
        and not key.startswith("PULSE_")
    }
    return {
        **env,
        "PULSE_HOME": str(settings.home),
        "PULSE_SECRET_KEY": settings.secret_key,
        "KAFKA_BOOTSTRAP_SERVERS": settings.kafka_bootstrap_servers,
        "REDIS_URL": settings.redis_url,
        "PULSE_COLLECTOR_PORT": str(port),
        "PULSE_KAFKA_PARTITIONS": str(settings.kafka_partitions),
    }


class Collector:
    """`pulse run collector` as a child process; its log goes to a file next to the test's."""

    def __init__(self, settings: Settings, log_dir: Path, name: str) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = log_dir / f"{name}.log"
        with self.log.open("wb") as out:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "pulse", "run", "collector"],
                env=_environment(settings, self.port),
                stdout=out,
                stderr=subprocess.STDOUT,
            )

    async def healthy(self, timeout_s: float = 60) -> None:
        deadline = time.monotonic() + timeout_s
        async with httpx.AsyncClient() as client:
            while time.monotonic() < deadline:
                if self.process.poll() is not None:
                    raise AssertionError(
                        f"collector exited {self.process.returncode}: {self.log.read_text()}"
                    )
                with contextlib.suppress(httpx.HTTPError):
                    if (await client.get(f"{self.url}/healthz")).status_code == 200:
                        return
                await asyncio.sleep(0.1)
        raise AssertionError(f"collector not healthy: {self.log.read_text()}")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


class LoadBalancer:
    def __init__(self, collectors: list[str], dashboards: list[str], log: Path) -> None:
        self.port, self.stats_port = free_port(), free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.stats = f"http://127.0.0.1:{self.stats_port}"
        env = {
            **os.environ,
            "PULSE_LB_COLLECTOR_BIND": f"127.0.0.1:{self.port}",
            "PULSE_LB_DASHBOARD_BIND": f"127.0.0.1:{free_port()}",
            "PULSE_LB_STATS_BIND": f"127.0.0.1:{self.stats_port}",
            "PULSE_COLLECTOR_1": collectors[0],
            "PULSE_COLLECTOR_2": collectors[1],
            "PULSE_DASHBOARD_1": dashboards[0],
            "PULSE_DASHBOARD_2": dashboards[1],
        }
        self.log = log
        with log.open("wb") as out:
            # -db: in the foreground, so that the test owns the process and its exit.
            self.process = subprocess.Popen(
                [HAPROXY, "-db", "-f", str(HAPROXY_CFG)], env=env, stdout=out, stderr=subprocess.STDOUT
            )

    async def in_rotation(self, backend: str, servers: int, timeout_s: float = 20) -> None:
        """Waits until `servers` of the backend pass their health checks (HAProxy's own count)."""
        deadline = time.monotonic() + timeout_s
        async with httpx.AsyncClient() as client:
            while time.monotonic() < deadline:
                if self.process.poll() is not None:
                    raise AssertionError(f"haproxy exited {self.process.returncode}: {self.log.read_text()}")
                with contextlib.suppress(httpx.HTTPError):
                    if self.up(await client.get(f"{self.stats}/stats;csv"), backend) == servers:
                        return
                await asyncio.sleep(0.1)
        raise AssertionError(f"{backend}: not {servers} servers up; {self.log.read_text()}")

    @staticmethod
    def up(stats: httpx.Response, backend: str) -> int:
        rows = [line.split(",") for line in stats.text.splitlines() if line.startswith(f"{backend},")]
        return sum(1 for row in rows if row[1] not in ("FRONTEND", "BACKEND") and row[17] == "UP")

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


@contextlib.contextmanager
def collectors_behind_haproxy(
    settings: Settings, log_dir: Path, count: int = 2
) -> Iterator[tuple[LoadBalancer, list[Collector]]]:
    """`count` collector processes (1 or 2) behind HAProxy; with one, both server lines name it."""
    collectors = [Collector(settings, log_dir, f"collector-{i + 1}") for i in range(count)]
    addresses = [f"127.0.0.1:{c.port}" for c in collectors]
    if count == 1:
        addresses *= 2
    balancer = LoadBalancer(
        addresses, [settings.dashboard_url.removeprefix("http://")] * 2, log_dir / "haproxy.log"
    )
    try:
        yield balancer, collectors
    finally:
        balancer.stop()
        for collector in collectors:
            collector.stop()
