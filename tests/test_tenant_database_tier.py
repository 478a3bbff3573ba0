"""The "separate database" tier: a tenant moved to a ClickHouse database of its own, events flowing.

Its figures stay exact through the move (its past events copied, its new ones written there, none
twice), its rows end up only in its database and everyone else's only in the shared one, and a
worker killed between a batch's parts (its own database's part stored, the shared one not yet, or
the shared one stored and the offsets row not yet) leaves every event counted once.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Literal

import msgspec
import pytest
from aiokafka import AIOKafkaProducer
from redis.asyncio import Redis

from pulse.events.message import EventV1, encode, partition_key
from pulse.kafka.partitioning import keyed_partitioner
from pulse.live.writer import LiveWriter
from pulse.oltp.accounts import Accounts
from pulse.oltp.db import create_engine
from pulse.oltp.replay_jobs import ReplayJobs
from pulse.replay.request import ReplayRefused, request_replay
from pulse.rollup.retention import TenantRetention
from pulse.rollup.sessions import Sessions
from pulse.rollup.worker import RollupWorker
from pulse.settings import Settings, load_settings
from pulse.telemetry.metrics import process_metrics
from pulse.telemetry.tracing import Tracing
from pulse.tenant_isolation import IsolationRefused, isolate_tenant
from pulse.warehouse.client import Warehouse
from pulse.warehouse.migrate import migration_files
from pulse.warehouse.routing import TenantDatabaseRouting
from pulse_cli import run_pulse
from stack import Stack, Tenant
from tiers import isolate
from visitor import USER_AGENT

VISITORS = 40
MIGRATIONS = Path(__file__).resolve().parents[1] / "migrations" / "clickhouse"


def _event(tenant: Tenant, n: int, ts_ms: int) -> EventV1:
    return EventV1(
        event_id=uuid.uuid4().bytes,
        tenant_id=tenant.tenant_id,
        site_id=tenant.site.id,
        ts_ms=ts_ms,
        name="pageview",
        url=f"https://{tenant.site.domain}/{n % 5}",
        referrer="",
        visitor_id=n % VISITORS,
        user_agent=USER_AGENT,
        screen_width=1280,
        props={},
    )


async def _produce(settings: Settings, events: Sequence[EventV1]) -> None:
    """Into the raw topic as the collector does: keyed by site and visitor, acknowledged by the broker."""
    producer = AIOKafkaProducer(
        bootstrap_servers=settings.kafka_bootstrap_servers, acks="all", partitioner=keyed_partitioner
    )
    await producer.start()
    try:
        sent = [
            await producer.send(settings.topic_raw, encode(event), key=partition_key(event))
            for event in events
        ]
        for delivery in sent:
            await delivery
    finally:
        await producer.stop()


async def _flow(settings: Settings, tenants: Sequence[Tenant], stop: asyncio.Event) -> dict[str, int]:
    """Ten events per tenant every 0.1 s until stopped; returns how many each got."""
    sent = dict.fromkeys((t.tenant_id for t in tenants), 0)
    while not stop.is_set():
        now = int(time.time() * 1000)
        events = [_event(t, sent[t.tenant_id] + i, now) for t in tenants for i in range(10)]
        await _produce(settings, events)
        for tenant in tenants:
            sent[tenant.tenant_id] += 10
        await asyncio.sleep(0.1)
    return sent


async def _rows(warehouse: Warehouse, database: str, tenant_id: str) -> tuple[int, int]:
    """The tenant's raw events in a database, and how many distinct ones."""
    result = await warehouse.run(
        warehouse.client.query,
        "SELECT count(), uniqExact(event_id) FROM {db:Identifier}.events WHERE tenant_id = {t:String}",
        parameters={"db": database, "t": tenant_id},
    )
    count, distinct = result.result_rows[0]
    return int(count), int(distinct)


async def _tenant_tables(warehouse: Warehouse, database: str) -> list[str]:
    """Every table of a database with a tenant_id column: raw events, rollups, sessions."""
    result = await warehouse.run(
        warehouse.client.query,
        "SELECT DISTINCT c.table FROM system.columns AS c JOIN system.tables AS t "
        "ON t.database = c.database AND t.name = c.table "
        "WHERE c.database = {db:String} AND c.name = 'tenant_id' AND t.engine LIKE '%MergeTree' "
        "ORDER BY c.table",
        parameters={"db": database},
    )
    return [str(row[0]) for row in result.result_rows]


async def _rows_per_table(warehouse: Warehouse, database: str, where: str, tenant_id: str) -> dict[str, int]:
    counts = {}
    for table in await _tenant_tables(warehouse, database):
        result = await warehouse.run(
            warehouse.client.query,
            f"SELECT count() FROM {{db:Identifier}}.{table} WHERE {where}",  # noqa: S608 (catalogue names)
            parameters={"db": database, "t": tenant_id},
        )
        counts[table] = int(result.result_rows[0][0])
    return counts


async def test_a_tenant_moved_while_events_flow_is_counted_once_and_only_in_its_database(
    stack: Stack,
) -> None:
    stays, moves = await stack.tenant("TierStays"), await stack.tenant("TierMoves")
    warehouse = Warehouse(stack.settings.effective_clickhouse_url, stack.settings.clickhouse_database)
    shared = warehouse.database
    stop = asyncio.Event()
    flow = asyncio.create_task(_flow(stack.settings, [stays, moves], stop))
    try:
        # Some of its events stored in the shared database before it moves.
        async def some_stored() -> bool:
            return (await _rows(warehouse, shared, moves.tenant_id))[0] > 0

        assert await stack.wait_for(some_stored, True)
        moved = await isolate(stack, moves)
        await asyncio.sleep(2)
    finally:
        stop.set()
        sent = await flow
    # Events from before the move were copied, and those after it were written there by the worker.
    assert 0 < moved.copied < sent[moves.tenant_id]
    own = moved.database
    assert (await stack.accounts.clickhouse_databases()).get(moves.tenant_id) == own

    for tenant in (stays, moves):
        n = sent[tenant.tenant_id]
        expected = {"pageviews": n, "events": n}
        assert await stack.counts(tenant, expected, timeout_s=60) == expected, tenant.site.name
    n = sent[moves.tenant_id]
    assert await stack.wait_for(lambda: _rows(warehouse, own, moves.tenant_id), (n, n)) == (n, n)
    assert await _rows(warehouse, shared, stays.tenant_id) == (sent[stays.tenant_id],) * 2
    # Nowhere else: not in any shared table, and nobody else's in its database.
    left_in_shared = await _rows_per_table(warehouse, shared, "tenant_id = {t:String}", moves.tenant_id)
    assert {"events", "stats_day", "sessions", "traffic_day"} <= set(left_in_shared)
    assert set(left_in_shared.values()) == {0}, left_in_shared
    others = await _rows_per_table(warehouse, own, "tenant_id != {t:String}", moves.tenant_id)
    assert set(others.values()) == {0}, others
    theirs = await _rows_per_table(warehouse, own, "tenant_id = {t:String}", moves.tenant_id)
    assert min(theirs["stats_day"], theirs["sessions"], theirs["traffic_day"]) > 0, theirs

    # Running the command again changes nothing.
    again = await isolate(stack, moves)
    assert (again.database, again.copied, again.events, again.migrations) == (own, 0, n, [])
    assert await stack.counts(moves, {"pageviews": n}) == {"pageviews": n}
    warehouse.close()


class Crash(Exception):
    """The worker's process dying at this point: nothing after it runs."""


Point = Literal["shared events", "offsets row"]


class CrashingWarehouse(Warehouse):
    """The real warehouse, except that the worker dies just before the first insert of `point`."""

    def __init__(self, url: str, database: str, point: Point, stop: asyncio.Event) -> None:
        super().__init__(url, database)
        self._point = point
        self._stop = stop
        self.inserted: list[str] = []

    async def insert(
        self,
        table: str,
        rows: Sequence[Sequence[Any]],
        columns: Sequence[str],
        token: str,
        database: str | None = None,
    ) -> None:
        part = "offsets row" if table == "consumed_offsets" else "own events" if database else "shared events"
        if part == self._point:
            # Its retry loop gives up once its process is stopping, as a killed one would.
            self._stop.set()
            raise Crash(f"killed before the {part} of a batch, after {self.inserted}")
        await super().insert(table, rows, columns, token, database)
        self.inserted.append(part)


def _worker(stack: Stack, settings: Settings, warehouse: Warehouse, redis: Redis) -> RollupWorker:
    return RollupWorker(
        settings,
        warehouse,
        LiveWriter(redis),
        Sessions(redis),
        TenantRetention(stack.accounts.retention_by_tenant),
        process_metrics(enabled=False),
        Tracing(enabled=False),
        TenantDatabaseRouting(
            settings.clickhouse_database,
            stack.accounts.clickhouse_databases,
            settings.tenant_database_cache_s,
        ),
    )


def _wave(tenants: Sequence[Tenant], count: int, newest_ms: int) -> list[EventV1]:
    """Interleaved, 1.5 s apart: a resent-copy window of one second recognises none as a copy, so what
    keeps an event stored before from being stored again is the tenant database's offsets."""
    return [_event(tenants[i % len(tenants)], i, newest_ms - (count - i) * 1500) for i in range(count)]


@pytest.mark.parametrize("point", ["shared events", "offsets row"])
async def test_a_worker_killed_between_a_batchs_parts_leaves_every_event_counted_once(
    stack: Stack, point: Point
) -> None:
    stays, moves = await stack.tenant("CrashStays"), await stack.tenant("CrashMoves")
    own = (await isolate(stack, moves)).database
    suffix = uuid.uuid4().hex[:8]
    # A topic, group and epoch of its own, so that only these workers read these events.
    settings = msgspec.structs.replace(
        stack.settings,
        topic_raw=f"tier.raw.{suffix}",
        topic_replay=f"tier.replay.{suffix}",
        topic_dlq=f"tier.dlq.{suffix}",
        consumer_group=f"tier-{suffix}",
        kafka_epoch=f"tier-{suffix}",
        rollup_resend_window_s=0.0,
    )
    url, shared = stack.settings.effective_clickhouse_url, stack.settings.clickhouse_database
    redis = Redis.from_url(stack.settings.redis_url)
    first = _wave([stays, moves], 240, int(time.time() * 1000) - 60_000)
    await _produce(settings, first)

    stop = asyncio.Event()
    crashing = CrashingWarehouse(url, shared, point, stop)
    with pytest.raises(Crash):
        await asyncio.wait_for(_worker(stack, settings, crashing, redis).run(stop), 60)
    crashing.close()
    assert "own events" in crashing.inserted
    checker = Warehouse(url, shared)
    assert (await _rows(checker, own, moves.tenant_id))[0] > 0
    in_shared_before = (await _rows(checker, shared, stays.tenant_id))[0]
    assert (in_shared_before > 0) == (point == "offsets row")

    # More events, so the batches read again are cut differently and carry other insert tokens.
    second = _wave([stays, moves], 60, int(time.time() * 1000))
    await _produce(settings, second)
    stop = asyncio.Event()
    recovering = asyncio.create_task(_worker(stack, settings, checker, redis).run(stop))
    try:
        for tenant, database in ((stays, shared), (moves, own)):
            n = sum(1 for e in first + second if e.tenant_id == tenant.tenant_id)
            stored = await stack.wait_for(lambda: _rows(checker, database, tenant.tenant_id), (n, n), 60)  # noqa: B023
            assert stored == (n, n), tenant.site.name
            # Read as the tenant reads them, from the rollups of its database.
            assert await stack.counts(tenant, {"pageviews": n}) == {"pageviews": n}
        assert await _rows(checker, shared, moves.tenant_id) == (0, 0)
        assert await _rows(checker, own, stays.tenant_id) == (0, 0)
    finally:
        stop.set()
        await asyncio.wait_for(recovering, 30)
        checker.close()
        await redis.aclose()


async def test_bad_names_are_refused_and_a_replay_of_a_moved_tenant_is_refused(stack: Stack) -> None:
    tenant = await stack.tenant("TierRefusals")
    warehouse = Warehouse(stack.settings.effective_clickhouse_url, stack.settings.clickhouse_database)
    try:
        for name in ("Upper", "1starts_with_digit", "has-dash", "system", warehouse.database):
            with pytest.raises(IsolationRefused, match="database"):
                await isolate_tenant(stack.settings, warehouse, stack.accounts, tenant.tenant_id, name)
        with pytest.raises(IsolationRefused, match="no tenant"):
            await isolate_tenant(stack.settings, warehouse, stack.accounts, "f" * 32)
    finally:
        warehouse.close()
    assert tenant.tenant_id not in await stack.accounts.clickhouse_databases()

    moved = await isolate(stack, tenant, f"tier_refusals_{tenant.tenant_id[:6]}")
    assert moved.database == f"tier_refusals_{tenant.tenant_id[:6]}"
    other = await stack.tenant("TierRefusalsOther")
    warehouse = Warehouse(stack.settings.effective_clickhouse_url, stack.settings.clickhouse_database)
    try:
        with pytest.raises(IsolationRefused, match="already holds tenant"):
            await isolate_tenant(stack.settings, warehouse, stack.accounts, other.tenant_id, moved.database)
        with pytest.raises(IsolationRefused, match="already has its own database"):
            await isolate_tenant(stack.settings, warehouse, stack.accounts, tenant.tenant_id, "another_name")
    finally:
        warehouse.close()

    engine = create_engine(stack.settings.effective_database_url)
    yesterday = datetime.now(UTC).date() - timedelta(days=1)
    try:
        with pytest.raises(ReplayRefused, match="database of its own"):
            await request_replay(
                stack.accounts,
                ReplayJobs(engine),
                tenant_id=tenant.tenant_id,
                site_id=None,
                first_day=yesterday,
                last_day=yesterday,
            )
    finally:
        await engine.dispose()


async def test_the_command_moves_a_tenant_prints_what_it_did_and_can_run_again(tmp_path: Path) -> None:
    # In processes of their own: chDB opens one data path per process, and the suite's stack has one.
    assert run_pulse(tmp_path, "migrate", timeout_s=120).returncode == 0
    engine = create_engine(load_settings({"PULSE_HOME": str(tmp_path)}).effective_database_url)
    try:
        accounts = Accounts(engine)
        tenant, other = await accounts.create_tenant("Cli"), await accounts.create_tenant("CliOther")
        first = await asyncio.to_thread(run_pulse, tmp_path, "tenant", "isolate", tenant.id, timeout_s=120)
        assert first.returncode == 0, first.stderr
        migrations = len(migration_files(MIGRATIONS))
        database = f"pulse_t_{tenant.id[:12]}"
        assert f"creating database {database}" in first.stdout
        assert (
            f"tenant {tenant.id} is on database {database}: 0 raw events there (0 copied now), "
            in first.stdout
        )
        assert f"{migrations} migrations applied now; rows deleted from pulse: events 0, " in first.stdout
        assert (await accounts.clickhouse_databases()) == {tenant.id: database}

        again = await asyncio.to_thread(run_pulse, tmp_path, "tenant", "isolate", tenant.id, timeout_s=120)
        assert again.returncode == 0, again.stderr
        assert "(0 copied now), 0 migrations applied now" in again.stdout

        taken = await asyncio.to_thread(
            run_pulse, tmp_path, "tenant", "isolate", other.id, "--database", database, timeout_s=120
        )
        assert taken.returncode == 1
        assert f"error: database {database} already holds tenant {tenant.id}" in taken.stderr
    finally:
        await engine.dispose()
