"""`pulse replay` rebuilds whole past days of raw events and every rollup of them, through Kafka.

The stack's own rollup worker carries the replays out: it re-emits raw rows into events.replay,
consumes them while live traffic has no lag, stages them, and swaps the days in.
"""

from __future__ import annotations

import asyncio
import os
import sys
import uuid
from datetime import UTC, date, datetime, timedelta

from aiokafka import AIOKafkaProducer

from pulse.events.message import EventV1, encode, partition_key
from pulse.kafka.partitioning import keyed_partitioner
from pulse.oltp.db import create_engine
from pulse.oltp.replay_jobs import ReplayJob, ReplayJobs
from pulse.replay.request import follow, request_replay
from pulse.replay.staging import create_staging, staging_exists, staging_table
from pulse.replay.swap import swap
from pulse.warehouse.client import Warehouse
from replay_snapshot import snapshot as _snapshot
from stack import Stack, Tenant
from visitor import USER_AGENT

MINUTE_MS = 60_000
REFERRERS = ("", "https://www.google.com/search?q=pulse", "https://news.ycombinator.com/item?id=1")


def _midnight_ms(day: date) -> int:
    return int(datetime(day.year, day.month, day.day, tzinfo=UTC).timestamp() * 1000)


def _events(tenant_id: str, site_id: str, today: date) -> list[EventV1]:
    """Two past days of visits (one running across their midnight) and a little of today."""
    first, second = today - timedelta(days=2), today - timedelta(days=1)
    visits: list[tuple[int, list[tuple[int, str]]]] = []
    for visitor in range(6):
        start = _midnight_ms(first) + (2 + 3 * visitor) * 3_600_000
        visits.append((visitor, [(start + i * 4 * MINUTE_MS, f"/page/{i}") for i in range(visitor % 3 + 1)]))
    midnight = _midnight_ms(second)
    visits.append((10, [(midnight - 10 * MINUTE_MS, "/late"), (midnight + 5 * MINUTE_MS, "/after-midnight")]))
    visits.append((11, [(midnight + 9 * 3_600_000, "/"), (midnight + 9 * 3_600_000 + MINUTE_MS, "/pricing")]))
    now_ms = int(datetime.now(UTC).timestamp() * 1000)
    visits.append((12, [(max(_midnight_ms(today), now_ms - 1000), "/today")]))
    events = []
    for visitor, pages in visits:
        for i, (ts_ms, path) in enumerate(pages):
            events.append(
                EventV1(
                    event_id=uuid.uuid4().bytes,
                    tenant_id=tenant_id,
                    site_id=site_id,
                    ts_ms=ts_ms,
                    name="pageview",
                    url=f"https://replay.example{path}?utm_campaign=autumn",
                    referrer=REFERRERS[visitor % 3] if i == 0 else f"https://replay.example{pages[i - 1][1]}",
                    visitor_id=1000 + visitor,
                    user_agent=USER_AGENT,
                    screen_width=1280,
                    props={},
                    country="DE",
                )
            )
        last = pages[-1][0]
        if visitor % 2 == 0 and last + MINUTE_MS < now_ms:
            events.append(
                EventV1(
                    event_id=uuid.uuid4().bytes,
                    tenant_id=tenant_id,
                    site_id=site_id,
                    ts_ms=last + 30_000,
                    name="signup",
                    url=f"https://replay.example{pages[-1][1]}",
                    referrer="",
                    visitor_id=1000 + visitor,
                    user_agent=USER_AGENT,
                    screen_width=1280,
                    props={"plan": "pro"},
                    country="DE",
                    engagement_ms=12_000,
                )
            )
    return events


async def _seed(stack: Stack, warehouse: Warehouse, tenants: list[Tenant], today: date) -> int:
    """Produces past-dated events as a backlog the worker catches up on; returns how many."""
    sites = []
    for tenant in tenants:
        second = await stack.accounts.create_site(tenant.tenant_id, "Second site", "second.example")
        sites += [(tenant.tenant_id, tenant.site.id), (tenant.tenant_id, second.id)]
    events = [event for tenant_id, site_id in sites for event in _events(tenant_id, site_id, today)]
    producer = AIOKafkaProducer(
        bootstrap_servers=stack.settings.kafka_bootstrap_servers, acks="all", partitioner=keyed_partitioner
    )
    await producer.start()
    try:
        for event in events:
            await producer.send(stack.settings.topic_raw, encode(event), key=partition_key(event))
        await producer.flush()
    finally:
        await producer.stop()
    tenant_ids = [t.tenant_id for t in tenants]
    expected = [len(events)] * len(_TOTALS)
    stored = await stack.wait_for(lambda: _totals(warehouse, tenant_ids), expected, timeout_s=60)
    assert stored == expected
    return len(events)


# Events as each table counts them. A view's rows become visible a moment after the raw rows.
_TOTALS = (
    "SELECT count() FROM events",
    "SELECT sum(events) FROM stats_minute",
    "SELECT sum(events) FROM stats_hour",
    "SELECT sum(events) FROM stats_day",
    "SELECT sum(events) FROM breakdowns_hour WHERE dimension = 'page'",
    "SELECT sum(events) FROM breakdowns_day WHERE dimension = 'page'",
    "SELECT sum(events) FROM sessions",
)


async def _totals(warehouse: Warehouse, tenant_ids: list[str]) -> list[int]:
    totals = []
    for sql in _TOTALS:
        query = f"{sql} {'AND' if 'WHERE' in sql else 'WHERE'} tenant_id IN {{t:Array(String)}}"
        result = await warehouse.run(warehouse.client.query, query, parameters={"t": tenant_ids})
        totals.append(int(result.result_rows[0][0]))
    return totals


async def _pulse(stack: Stack, *args: str) -> tuple[int, str]:
    """The `pulse` command in a process of its own, as an operator runs it."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PULSE_")}
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "pulse",
        *args,
        env={**env, "PULSE_HOME": str(stack.settings.home)},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    output, _ = await asyncio.wait_for(process.communicate(), 120)
    return process.returncode or 0, output.decode()


async def _done(jobs: ReplayJobs, job: ReplayJob) -> ReplayJob:
    async def last() -> ReplayJob:
        async for seen in follow(jobs, job.id, interval_s=0.2):
            final = seen
        return final

    return await asyncio.wait_for(last(), 90)


async def test_replaying_unchanged_days_rebuilds_exactly_what_was_there(stack: Stack) -> None:
    today = datetime.now(UTC).date()
    warehouse = Warehouse(stack.settings.effective_clickhouse_url, stack.settings.clickhouse_database)
    replayed, other = await stack.tenant("Replayed"), await stack.tenant("Bystander")
    await _seed(stack, warehouse, [replayed, other], today)
    tenant_ids = [replayed.tenant_id, other.tenant_id]
    before = await _snapshot(warehouse, tenant_ids)
    in_range = sum(1 for row in before["events"] if row[0] == replayed.tenant_id and row[3].date() < today)

    first, last = today - timedelta(days=2), today - timedelta(days=1)
    code, output = await _pulse(
        stack, "replay", "--tenant", replayed.tenant_id, "--from", first.isoformat(), "--to", last.isoformat()
    )

    assert code == 0, output
    assert f"done: {in_range} events rebuilt and swapped in" in output
    # Every projection, sessions included (the one running over midnight is two), is as it was,
    # for both of the tenant's sites; the other tenant and today were not touched.
    assert await _snapshot(warehouse, tenant_ids) == before
    epochs_sql = (
        "SELECT tenant_id, toDate(ts) = today(), startsWith(kafka_epoch, 'replay-'), count() FROM events "
        "WHERE tenant_id IN {t:Array(String)} GROUP BY ALL ORDER BY ALL"
    )
    epochs = await warehouse.run(warehouse.client.query, epochs_sql, parameters={"t": tenant_ids})
    assert {
        (t, bool(is_today), bool(replayed_row)) for t, is_today, replayed_row, _ in epochs.result_rows
    } == {
        (replayed.tenant_id, False, True),
        (replayed.tenant_id, True, False),
        (other.tenant_id, False, False),
        (other.tenant_id, True, False),
    }
    job_id = output.split()[1].rstrip(":")
    assert not await staging_exists(warehouse, job_id)


async def test_a_rollup_added_later_is_filled_for_past_days_and_a_damaged_one_repaired(stack: Stack) -> None:
    today = datetime.now(UTC).date()
    warehouse = Warehouse(stack.settings.effective_clickhouse_url, stack.settings.clickhouse_database)
    tenant = await stack.tenant("Rebuilt")
    await _seed(stack, warehouse, [tenant], today)
    scope = {"t": [tenant.tenant_id]}
    expected_daily = (
        "SELECT site_id, toDate(ts), countIf(name = 'pageview') FROM events "
        "WHERE tenant_id IN {t:Array(String)} AND toDate(ts) < today() GROUP BY ALL ORDER BY ALL"
    )
    expected = (await warehouse.run(warehouse.client.query, expected_daily, parameters=scope)).result_rows
    command = warehouse.client.command
    # A rollup a later migration adds: its view sees only events inserted after it exists.
    await warehouse.run(
        command,
        "CREATE TABLE replay_test_pageviews (tenant_id LowCardinality(String), site_id LowCardinality(String), "
        "day Date, pageviews SimpleAggregateFunction(sum, UInt64)) ENGINE = AggregatingMergeTree "
        "PARTITION BY toYYYYMM(day) ORDER BY (tenant_id, site_id, day)",
    )
    await warehouse.run(
        command,
        "CREATE MATERIALIZED VIEW replay_test_pageviews_mv TO replay_test_pageviews AS SELECT tenant_id, "
        "site_id, toDate(ts) AS day, countIf(name = 'pageview') AS pageviews FROM events GROUP BY ALL",
    )
    try:
        # And a rollup that lost rows.
        await warehouse.run(
            command,
            "DELETE FROM stats_day WHERE tenant_id = {t:String} AND site_id = {s:String}",
            parameters={"t": tenant.tenant_id, "s": tenant.site.id},
            settings={"lightweight_deletes_sync": 2},
        )
        engine = create_engine(stack.settings.effective_database_url)
        jobs = ReplayJobs(engine)
        try:
            job = await request_replay(
                stack.accounts,
                jobs,
                tenant_id=tenant.tenant_id,
                site_id=None,
                first_day=today - timedelta(days=2),
                last_day=today - timedelta(days=1),
            )
            final = await _done(jobs, job)
        finally:
            await engine.dispose()
        assert final.state == "done"
        in_range = "SELECT count() FROM events WHERE tenant_id IN {t:Array(String)} AND toDate(ts) < today()"
        total = (await warehouse.run(warehouse.client.query, in_range, parameters=scope)).result_rows[0][0]
        assert final.total == final.emitted == final.staged == total

        added = (
            "SELECT site_id, day, sum(pageviews) FROM replay_test_pageviews "
            "WHERE tenant_id IN {t:Array(String)} GROUP BY ALL ORDER BY ALL"
        )
        repaired = (
            "SELECT site_id, toDate(bucket), sum(pageviews) FROM stats_day WHERE tenant_id IN {t:Array(String)} "
            "AND bucket < today() GROUP BY ALL ORDER BY ALL"
        )
        for sql in (added, repaired):
            rows = (await warehouse.run(warehouse.client.query, sql, parameters=scope)).result_rows
            assert [tuple(r) for r in rows] == [tuple(r) for r in expected]
    finally:
        await warehouse.run(command, "DROP VIEW IF EXISTS replay_test_pageviews_mv")
        await warehouse.run(command, "DROP TABLE IF EXISTS replay_test_pageviews")


async def test_a_swap_run_again_after_a_crash_gives_the_same_days(stack: Stack) -> None:
    today = datetime.now(UTC).date()
    warehouse = Warehouse(stack.settings.effective_clickhouse_url, stack.settings.clickhouse_database)
    tenant = await stack.tenant("SwappedTwice")
    await _seed(stack, warehouse, [tenant], today)
    before = await _snapshot(warehouse, [tenant.tenant_id])
    sites = tuple(sorted({row[1] for row in before["events"]}))
    job = ReplayJob(
        id=uuid.uuid4().hex,
        tenant_id=tenant.tenant_id,
        site_ids=sites,
        first_day=today - timedelta(days=2),
        last_day=today - timedelta(days=1),
        state="swapping",
    )
    await create_staging(warehouse, job.id)
    try:
        await warehouse.run(
            warehouse.client.command,
            f"INSERT INTO {staging_table(job.id)} SELECT * FROM events "  # noqa: S608
            "WHERE tenant_id = {t:String} AND toDate(ts) < today()",
            parameters={"t": tenant.tenant_id},
        )
        await swap(warehouse, job)
        await swap(warehouse, job)
    finally:
        await warehouse.run(warehouse.client.command, f"DROP TABLE IF EXISTS {staging_table(job.id)}")
    assert await _snapshot(warehouse, [tenant.tenant_id]) == before
