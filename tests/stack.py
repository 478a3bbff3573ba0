"""The real embedded stack for integration tests: Tansu broker, Valkey, chDB and SQLite.

One stack per test session (a chDB data path can be opened by one process only), with
all three roles running in the test's event loop on free 127.0.0.1 ports. Tests isolate
themselves by creating their own tenants and sites.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import time
from collections.abc import AsyncIterator, Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import httpx
import msgspec
import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition
from sqlalchemy.ext.asyncio import AsyncEngine

from pulse.embedded.services import EmbeddedService, free_port, start_broker, start_valkey
from pulse.migrate import migrate
from pulse.oltp.accounts import DEFAULT_RETENTION_DAYS, Accounts, Site
from pulse.oltp.db import create_engine
from pulse.roles import run_roles
from pulse.settings import Settings, load_settings


class Tenant(msgspec.Struct):
    tenant_id: str
    email: str
    password: str
    site: Site


class Stack:
    def __init__(self, settings: Settings, engine: AsyncEngine) -> None:
        self.settings = settings
        # The stack's OLTP store, for tests that set up keys, goals and the like directly.
        self.engine = engine
        self.accounts = Accounts(engine)
        self.collector = settings.collector_url
        self.dashboard = settings.dashboard_url

    async def tenant(self, name: str, retention_days: int = DEFAULT_RETENTION_DAYS) -> Tenant:
        """A new tenant with an owner and one site."""
        tenant = await self.accounts.create_tenant(name, retention_days)
        email = f"{re.sub(r'[^a-z0-9]+', '-', name.lower())}-{tenant.id[:8]}@example.com"
        password = "correct horse battery"
        await self.accounts.create_user(email, password, tenant.id, "owner")
        site = await self.accounts.create_site(tenant.id, f"{name} site", f"{name.lower()}.example")
        return Tenant(tenant_id=tenant.id, email=email, password=password, site=site)

    async def token(self, tenant: Tenant) -> str:
        async with httpx.AsyncClient(base_url=self.dashboard, timeout=30) as client:
            response = await client.post(
                "/api/v1/token", json={"email": tenant.email, "password": tenant.password}
            )
            response.raise_for_status()
            return str(response.json()["token"])

    async def counts(
        self, tenant: Tenant, expected: Mapping[str, int], period: str = "24h", timeout_s: float = 30.0
    ) -> dict[str, int]:
        """Polls the stats API as the tenant until the named figures are `expected`; returns them."""
        token = await self.token(tenant)
        names = tuple(expected)
        async with httpx.AsyncClient(
            base_url=self.dashboard, headers={"authorization": f"Bearer {token}"}, timeout=10
        ) as api:

            async def figures() -> dict[str, int]:
                try:
                    response = await api.get(
                        f"/api/v1/sites/{tenant.site.id}/aggregate", params={"period": period}
                    )
                except httpx.TimeoutException:
                    # Embedded chDB runs one statement at a time: a read can wait behind a worker's
                    # catch-up inserts. The figures are asked for again until the deadline.
                    return {"timeout": 1}
                if response.status_code != 200:
                    # ClickHouse may be down for a test, and back a moment later.
                    return {"status": response.status_code}
                body = response.json()
                return {name: int(body[name]) for name in names}

            return dict(await self.wait_for(figures, dict(expected), timeout_s=timeout_s))

    async def raw_end_offsets(self) -> int:
        """Total messages ever written to events.raw, to prove a refusal wrote nothing."""
        consumer = AIOKafkaConsumer(bootstrap_servers=self.settings.kafka_bootstrap_servers)
        await consumer.start()
        try:
            partitions = [
                TopicPartition(self.settings.topic_raw, p) for p in range(self.settings.kafka_partitions)
            ]
            offsets = await consumer.end_offsets(partitions)
            return sum(offsets.values())
        finally:
            await consumer.stop()

    async def wait_for(
        self, probe: Callable[[], Any], expected: Any, timeout_s: float = 30.0, interval_s: float = 0.1
    ) -> Any:
        deadline = time.monotonic() + timeout_s
        value = None
        while time.monotonic() < deadline:
            value = await probe()
            if value == expected:
                return value
            await asyncio.sleep(interval_s)
        return value


@pytest.fixture(scope="session")
def infrastructure(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, str, str]]:
    home = tmp_path_factory.mktemp("pulse-home")
    services: list[EmbeddedService] = []
    try:
        broker, kafka = start_broker(home)
        services.append(broker)
        valkey, redis = start_valkey(home)
        services.append(valkey)
        yield home, kafka, redis
    finally:
        for service in reversed(services):
            service.stop()


@pytest.fixture(scope="session")
async def stack(infrastructure: tuple[Path, str, str]) -> AsyncIterator[Stack]:
    home, kafka, redis = infrastructure
    settings = load_settings(
        {
            "PULSE_HOME": str(home),
            "KAFKA_BOOTSTRAP_SERVERS": kafka,
            "REDIS_URL": redis,
            "PULSE_COLLECTOR_PORT": str(free_port()),
            "PULSE_DASHBOARD_PORT": str(free_port()),
            "PULSE_ROLLUP_PORT": str(free_port()),
            "PULSE_ROLLUP_POLL_MS": "50",
            # Every test signs in from 127.0.0.1; the per-IP login limit is tested on an app of its own.
            "PULSE_LOGIN_RATE_LIMIT_PER_MIN": "100000",
            # Tests move tenants to databases of their own; each move waits this out first.
            "PULSE_TENANT_DATABASE_CACHE_S": "0.5",
            # Past days are folded when a test's query asks for them, as the tests of folding
            # count; test_stats_prefold runs the background folder itself.
            "PULSE_PREFOLD_DAYS": "0",
        }
    )
    await migrate(settings)
    stop = asyncio.Event()
    task = asyncio.create_task(run_roles(settings, ["collector", "rollup", "dashboard"], stop))
    engine = create_engine(settings.effective_database_url)
    try:
        async with httpx.AsyncClient() as client:
            for url in (settings.collector_url, settings.dashboard_url):
                await _healthy(client, f"{url}/healthz", task)
        yield Stack(settings, engine)
    finally:
        stop.set()
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.wait_for(task, 30)
        await engine.dispose()


async def _healthy(client: httpx.AsyncClient, url: str, task: asyncio.Task[None]) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if task.done():
            task.result()
        with contextlib.suppress(httpx.HTTPError):
            if (await client.get(url)).status_code == 200:
                return
        await asyncio.sleep(0.1)
    raise TimeoutError(f"{url} not healthy")


@contextlib.asynccontextmanager
async def serving(app: Any, port: int) -> AsyncIterator[str]:
    """Serve an ASGI app on 127.0.0.1:port in this event loop for the duration of the block."""
    import uvicorn

    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on")
    )
    task = asyncio.create_task(server.serve())
    url = f"http://127.0.0.1:{port}"
    try:
        async with httpx.AsyncClient() as client:
            await _healthy(client, f"{url}/healthz", task)
        yield url
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, 15)
