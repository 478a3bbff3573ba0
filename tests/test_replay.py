"""`pulse replay` rebuilds whole past days of raw events and every rollup of them, through Kafka.

The stack's own rollup worker carries the replays out: it re-emits raw rows into events.replay,
consumes them while live traffic has no lag, stages them, and swaps the days in.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

from pulse.oltp.db import create_engine
from pulse.oltp.replay_jobs import ReplayJob, ReplayJobs
from pulse.replay.request import request_replay
from pulse.replay.staging import create_staging, staging_exists, staging_table
from pulse.replay.swap import swap
from pulse.warehouse.client import Warehouse
from replay_days import done, pulse, seed
from replay_snapshot import snapshot as _snapshot
from stack import Stack


async def test_replaying_unchanged_days_rebuilds_exactly_what_was_there(stack: Stack) -> None:
    today = datetime.now(UTC).date()
    warehouse = Warehouse(stack.settings.effective_clickhouse_url, stack.settings.clickhouse_database)
    replayed, other = await stack.tenant("Replayed"), await stack.tenant("Bystander")
    await seed(stack, warehouse, [replayed, other], today)
    tenant_ids = [replayed.tenant_id, other.tenant_id]
    before = await _snapshot(warehouse, tenant_ids)
    in_range = sum(1 for row in before["events"] if row[0] == replayed.tenant_id and row[3].date() < today)

    first, last = today - timedelta(days=2), today - timedelta(days=1)
    code, output = await pulse(
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
    await seed(stack, warehouse, [tenant], today)
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
            final = await done(jobs, job)
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
    await seed(stack, warehouse, [tenant], today)
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
