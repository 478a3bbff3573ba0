"""Every event the collector acknowledged is counted exactly once, whatever is killed when.

Load runs through a real collector while the process holding the rollup worker (and the
dashboard, as `pulse up` runs them) is SIGKILLed again and again at random moments, mostly
mid-batch, and the collector once. Afterwards every event that got a 202 is in Kafka, and the
rollups hold exactly the events Kafka holds, per site and per minute: nothing lost to a kill,
nothing counted twice by the batches a restarted worker reads again. (A kill of the collector
can cut off the answer to an event the broker already acknowledged; that event is counted
too, once, and its client, having seen no 202, would send it again.)
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest

from load import Load, kill, pulse_env, role_process, stats_api, topic_events
from pulse.embedded.services import EmbeddedService, free_port, start_broker, start_valkey
from pulse.oltp.accounts import Accounts
from pulse.oltp.db import create_engine
from pulse.settings import Settings, load_settings

LOAD_S = 20.0
PASSWORD = "correct horse battery"
# Load and restarts of its own that take the whole machine, with deadlines for every restart.
pytestmark = pytest.mark.serial


class Backend:
    """`pulse run rollup dashboard`, restartable: the worker and the stats API share the chDB path."""

    def __init__(self, home: Path, env: dict[str, str]) -> None:
        self._home = home
        self._env = env
        self._stack = contextlib.ExitStack()
        self.process: subprocess.Popen[bytes] | None = None
        self.kills = 0

    def start(self) -> None:
        self.process = self._stack.enter_context(role_process(self._home, ["rollup", "dashboard"], self._env))

    def kill(self) -> None:
        assert self.process is not None
        kill(self.process)
        self.kills += 1
        self.start()

    def stop(self) -> None:
        """Gone until started again, so another process can open the chDB path."""
        self._stack.close()
        self._stack = contextlib.ExitStack()
        self.process = None

    def close(self) -> None:
        self._stack.close()


@contextlib.contextmanager
def services(home: Path) -> Iterator[tuple[str, str]]:
    started: list[EmbeddedService] = []
    try:
        broker, bootstrap = start_broker(home)
        started.append(broker)
        valkey, redis = start_valkey(home)
        started.append(valkey)
        yield bootstrap, redis
    finally:
        for service in reversed(started):
            service.stop()


async def _accounts(settings: Settings) -> tuple[str, list[str]]:
    engine = create_engine(settings.effective_database_url)
    try:
        accounts = Accounts(engine)
        tenant = await accounts.create_tenant("Chaos")
        await accounts.create_user("chaos@example.com", PASSWORD, tenant.id, "owner")
        sites = [
            (await accounts.create_site(tenant.id, f"Chaos {n}", f"chaos{n}.example")).id for n in (1, 2)
        ]
        return tenant.id, sites
    finally:
        await engine.dispose()


async def _healthy(url: str, timeout_s: float = 60.0) -> None:
    deadline = time.monotonic() + timeout_s
    async with httpx.AsyncClient() as client:
        while time.monotonic() < deadline:
            with contextlib.suppress(httpx.HTTPError):
                if (await client.get(f"{url}/healthz")).status_code == 200:
                    return
            await asyncio.sleep(0.1)
    raise TimeoutError(f"{url} not healthy within {timeout_s:.0f}s")


async def _minutes(dashboard: str, site: str) -> Counter[str]:
    """Events per minute of the last 30 minutes, from the stats API as a tenant reads it."""
    body = await stats_api(
        dashboard, "chaos@example.com", PASSWORD, f"/api/v1/sites/{site}/timeseries", period="30m"
    )
    return Counter({p["t"][:16]: p["events"] for p in body["points"] if p["events"]})


async def test_rollups_equal_the_202s_per_site_and_minute_through_kills(tmp_path: Path) -> None:
    with services(tmp_path) as (bootstrap, redis):
        dashboard_port, rollup_port, collector_port = free_port(), free_port(), free_port()
        env = {
            "KAFKA_BOOTSTRAP_SERVERS": bootstrap,
            "REDIS_URL": redis,
            "PULSE_KAFKA_EPOCH": "chaos",
            "PULSE_DASHBOARD_PORT": str(dashboard_port),
            "PULSE_ROLLUP_PORT": str(rollup_port),
            "PULSE_COLLECTOR_PORT": str(collector_port),
            # Small batches, so a kill lands between the insert and the commit often.
            "PULSE_ROLLUP_BATCH_MAX": "50",
            "PULSE_RATE_LIMIT_IP_PER_S": "0",
            # The figures are read by signing in once per site per poll: more than a person's logins.
            "PULSE_LOGIN_RATE_LIMIT_PER_MIN": "100000",
        }
        # In a process of its own: chDB opens one data path per process.
        migrate = await asyncio.to_thread(
            subprocess.run,
            [sys.executable, "-m", "pulse", "migrate"],
            env=pulse_env(tmp_path, env),
            capture_output=True,
            check=False,
        )
        assert migrate.returncode == 0, migrate.stderr
        settings = load_settings({"PULSE_HOME": str(tmp_path), "KAFKA_BOOTSTRAP_SERVERS": bootstrap})
        _, sites = await _accounts(settings)
        dashboard = f"http://127.0.0.1:{dashboard_port}"
        collector_url = f"http://127.0.0.1:{collector_port}"

        backend = Backend(tmp_path, env)
        collector = contextlib.ExitStack()
        try:
            backend.start()
            collector_process = collector.enter_context(role_process(tmp_path, ["collector"], env))
            await asyncio.gather(_healthy(dashboard), _healthy(collector_url))
            rng = random.Random(5)
            async with Load(collector_url, sites, "chaos") as load:
                started = time.monotonic()
                killed_collector = False
                while time.monotonic() - started < LOAD_S:
                    await asyncio.sleep(rng.uniform(0.8, 2.0))
                    await asyncio.to_thread(backend.kill)
                    if not killed_collector and time.monotonic() - started > LOAD_S / 2:
                        kill(collector_process)
                        collector.close()
                        collector_process = collector.enter_context(
                            role_process(tmp_path, ["collector"], env)
                        )
                        killed_collector = True
            accepted = load.accepted()
            # Every event Kafka holds, once: the 202s, and the few whose answer a kill cut off
            # after the broker had acknowledged them (the client saw an error and would retry).
            stored = {event.event_id: event for event in await topic_events(settings)}.values()
            assert accepted <= {event.url for event in stored}
            expected: dict[str, Counter[str]] = {site: Counter() for site in sites}
            for event in stored:
                minute = datetime.fromtimestamp(event.ts_ms / 1000, UTC).strftime("%Y-%m-%dT%H:%M")
                expected[event.site_id][minute] += 1

            await _healthy(dashboard)
            deadline = time.monotonic() + 90
            actual = {site: await _minutes(dashboard, site) for site in sites}
            while actual != expected and time.monotonic() < deadline:
                await asyncio.sleep(0.5)
                actual = {site: await _minutes(dashboard, site) for site in sites}
        finally:
            collector.close()
            backend.close()

    print(
        f"chaos: {load.tally()}, in Kafka without a 202: {len(stored) - len(accepted)}, "
        f"worker kills {backend.kills}, collector kills 1"
    )
    assert backend.kills >= 8
    assert len(accepted) > 500
    assert actual == expected
