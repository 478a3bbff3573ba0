"""The stats query read from rollups answers as the raw path does (pulse.stats.rollup_plan).

A site's last ten days of history are generated inside the stack's chDB as bench/seed_events.py
does (pulse.loadgen.history), so the materialized views fill the rollups as the rollup worker's
inserts would. Every query shape the rollups answer is asked of both paths: the same rows come
back, pageviews, events, bounce rate, visit duration and folded visits exactly, visitors and
visits counted by sketches within their error. Shapes they do not answer fall back to raw events.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, date, datetime, timedelta
from typing import Any

import msgspec
import pytest

from pulse.oltp.accounts import Site
from pulse.oltp.goals import Goals
from pulse.stats.query import Metric, StatsQuery, check
from pulse.stats.query_result import QueryResult
from pulse.stats.query_service import StatsQueries
from pulse.stats.rollup_compile import certain
from pulse.stats.rollup_plan import RollupPlan, plan
from pulse.tenancy import TenantScope
from pulse.warehouse.client import Warehouse
from pulse.warehouse.reader import ScopedReader, SharedDatabase
from seeded_history import insert_history
from stack import Stack

EVENTS = 20_000
DAYS = 10
ALL: list[Metric] = ["visitors", "visits", "pageviews", "events", "views_per_visit"]
CARDS: list[Metric] = [*ALL, "bounce_rate", "visit_duration"]
# Sketch estimates (uniqCombined(13): about 1.2% standard error) against exact counts.
ESTIMATED = {"visitors", "visits", "views_per_visit"}
TOLERANCE = 0.04


class Seeded(msgspec.Struct):
    scope: TenantScope
    site: Site
    fast: StatsQueries
    raw: StatsQueries
    warehouse: Warehouse
    end: datetime


@pytest.fixture(scope="module")
async def seeded(stack: Stack) -> Seeded:
    return await _seed(stack, "Rollups", EVENTS)


async def _seed(stack: Stack, name: str, events: int) -> Seeded:
    tenant, warehouse, end = await insert_history(stack, name, events, DAYS)
    reader = ScopedReader(warehouse, SharedDatabase(stack.settings.clickhouse_database))
    goals = Goals(stack.engine)
    return Seeded(
        scope=TenantScope.of_user(tenant.tenant_id, "test", "viewer"),
        site=tenant.site,
        # Folds checked on every query: the tests add late events and expect them at once.
        fast=StatsQueries(reader, goals, fold_cache_s=0),
        raw=StatsQueries(reader, goals, rollups=False),
        warehouse=warehouse,
        end=end,
    )


async def _both(seeded: Seeded, **fields: Any) -> tuple[QueryResult, QueryResult]:
    query = msgspec.convert(fields, StatsQuery)
    return await seeded.fast.run(seeded.scope, seeded.site, query), await seeded.raw.run(
        seeded.scope, seeded.site, query
    )


def _same(fast: QueryResult, raw: QueryResult, exact: Sequence[str] = ()) -> None:
    """The same rows (in any order), figures equal or, for sketches, within TOLERANCE."""
    assert fast.meta.approximate, "answered from raw events, not from the rollups"
    assert not raw.meta.approximate
    metrics = fast.meta.metrics
    found = {tuple(r.dimensions): r.metrics for r in fast.results}
    expected = {tuple(r.dimensions): r.metrics for r in raw.results}
    assert found.keys() == expected.keys()
    assert expected, "nothing to compare"
    for key, figures in expected.items():
        for metric, got, want in zip(metrics, found[key], figures, strict=True):
            if metric in ESTIMATED and metric not in exact:
                assert got == pytest.approx(want, rel=TOLERANCE, abs=2), (key, metric)
            else:
                assert got == pytest.approx(want, abs=1e-9), (key, metric)
    assert fast.meta.has_more == raw.meta.has_more


def _days_ago(seeded: Seeded, days: int) -> date:
    return (seeded.end - timedelta(days=days)).date()


@pytest.mark.parametrize("period", ["7d", "30d", "today", "24h", "month"])
async def test_site_totals(seeded: Seeded, period: str) -> None:
    _same(*await _both(seeded, metrics=ALL, date_range=period))


@pytest.mark.parametrize("period", ["7d", "30d", "today"])
async def test_site_totals_with_bounce_rate_and_visit_duration(seeded: Seeded, period: str) -> None:
    fast, raw = await _both(seeded, metrics=CARDS, date_range=period)
    # Visits are counted one by one here: exact, as are the figures made from them.
    _same(fast, raw, exact=["visits", "views_per_visit"])


async def test_visit_figures_of_past_days_are_folded_and_used(seeded: Seeded) -> None:
    first, last = _days_ago(seeded, 6), _days_ago(seeded, 2)
    fields = {"metrics": CARDS, "date_range": {"from": first.isoformat(), "to": last.isoformat()}}
    _same(*await _both(seeded, **fields), exact=["visits", "views_per_visit"])
    folded = await _folded_days(seeded)
    assert {first + timedelta(days=n) for n in range(5)} <= folded
    # Read again from the folds alone.
    _same(*await _both(seeded, **fields), exact=["visits", "views_per_visit"])


async def test_a_range_ending_before_now_counts_the_visits_under_way_then_whole(seeded: Seeded) -> None:
    start = datetime.combine(_days_ago(seeded, 4), datetime.min.time(), UTC)
    end = start + timedelta(days=2, hours=13, minutes=7)
    fields = {"date_range": {"from": start.isoformat(), "to": end.isoformat()}}
    fast, raw = await _both(seeded, metrics=CARDS, **fields)
    (found,), (expected,) = fast.results, raw.results
    # The raw path stops the few visits under way at the end there; the rollups count them whole.
    assert found.metrics[:5] == pytest.approx(expected.metrics[:5], rel=0.02)
    assert found.metrics[5:] == pytest.approx(expected.metrics[5:], rel=0.02)
    fast, raw = await _both(
        seeded, metrics=["visitors", "visits"], dimensions=["exit_page"], limit=3, **fields
    )
    assert [r.dimensions for r in fast.results] == [r.dimensions for r in raw.results]


async def test_a_late_event_makes_its_day_fold_again(stack: Stack) -> None:
    seeded = await _seed(stack, "Rollups late", 3_000)
    day = _days_ago(seeded, 3)
    fields = {"metrics": CARDS, "date_range": {"from": day.isoformat(), "to": day.isoformat()}}
    before, _ = await _both(seeded, **fields)
    assert day in await _folded_days(seeded)
    await add_late_pageview(seeded, day)
    fast, raw = await _both(seeded, **fields)
    _same(fast, raw, exact=["visits", "views_per_visit"])
    assert fast.results[0].metrics[2] == before.results[0].metrics[2] + 1


async def add_late_pageview(seeded: Seeded, day: date) -> None:
    """A pageview late into the day's first visit, ten minutes after its first event."""
    sql = """
INSERT INTO events
SELECT * REPLACE (ts + INTERVAL 10 MINUTE AS ts, MD5('late') AS event_id, 'pageview' AS name)
FROM (
    SELECT *
    FROM events
    WHERE tenant_id = {t:String} AND site_id = {s:String} AND toDate(session_start) = {d:Date}
    ORDER BY session_start, ts
    LIMIT 1
)
"""
    params = {"t": seeded.scope.tenant_id, "s": seeded.site.id, "d": day}
    await seeded.warehouse.run(seeded.warehouse.client.command, sql, parameters=params)


TRAFFIC = ["page", "hostname", "country", "device", "browser", "browser_version", "os", "os_version", "event"]
VISITS = ["referrer", "source", "channel", "utm_source", "utm_medium", "utm_campaign", "entry_page"]


@pytest.mark.parametrize("dimension", TRAFFIC)
async def test_breakdowns_by_an_event_attribute(seeded: Seeded, dimension: str) -> None:
    _same(*await _both(seeded, metrics=ALL, dimensions=[dimension], date_range="7d", limit=10_000))


@pytest.mark.parametrize("dimension", [*VISITS, "exit_page"])
async def test_breakdowns_by_a_visit_attribute(seeded: Seeded, dimension: str) -> None:
    fast, raw = await _both(
        seeded, metrics=["visitors", "visits"], dimensions=[dimension], date_range="30d", limit=10_000
    )
    _same(fast, raw, exact=["visits"])


@pytest.mark.parametrize("dimension", ["page", "entry_page", "exit_page", "referrer"])
async def test_the_top_rows_of_many_values_are_those_of_the_raw_path(seeded: Seeded, dimension: str) -> None:
    fast, raw = await _both(
        seeded, metrics=["visitors", "visits"], dimensions=[dimension], date_range="7d", limit=3
    )
    _same(fast, raw)
    assert [r.dimensions for r in fast.results] == [r.dimensions for r in raw.results]


@pytest.mark.parametrize(
    ("timezone", "grain", "period"),
    [
        ("UTC", "hour", "24h"),
        ("UTC", "day", "30d"),
        ("UTC", "week", "30d"),
        ("UTC", "month", "30d"),
        ("America/New_York", "day", "7d"),
        ("Europe/Berlin", "hour", "7d"),
    ],
)
async def test_time_series(seeded: Seeded, timezone: str, grain: str, period: str) -> None:
    fields = {"dimensions": [f"time:{grain}"], "date_range": period, "timezone": timezone, "limit": 1000}
    _same(*await _both(seeded, metrics=["visitors", "pageviews", "events"], **fields))
    _same(
        *await _both(seeded, metrics=["visitors", "pageviews"], filters=[["country", "is", ["US"]]], **fields)
    )


@pytest.mark.parametrize(
    "filters",
    [
        [["page", "is", ["/pricing"]]],
        [["country", "is_not", ["US", "DE"]]],
        [["browser", "contains", ["hrom"]]],
        [["page", "matches", ["^/docs/"]], ["page", "is_not", ["/docs/install"]]],
        [["source", "is", ["Google"]]],
    ],
)
async def test_filtered_totals(seeded: Seeded, filters: list[list[Any]]) -> None:
    metrics: list[Metric] = ALL if filters[0][0] != "source" else ["visitors", "visits"]
    fast, raw = await _both(seeded, metrics=metrics, filters=filters, date_range="7d")
    _same(fast, raw, exact=["visits"] if filters[0][0] == "source" else [])


async def test_filters_on_the_grouped_dimension(seeded: Seeded) -> None:
    fast, raw = await _both(
        seeded,
        metrics=["visitors", "events"],
        dimensions=["event"],
        filters=[["event", "is_not", ["pageview"]]],
        date_range="30d",
    )
    _same(fast, raw)
    fast, raw = await _both(
        seeded,
        metrics=["visitors", "visits"],
        dimensions=["utm_source"],
        filters=[["utm_source", "is_not", [""]]],
        date_range="30d",
    )
    _same(fast, raw, exact=["visits"])


async def test_minutes_at_either_end_come_from_raw_events(seeded: Seeded) -> None:
    start = seeded.end - timedelta(days=5, minutes=17)
    end = seeded.end - timedelta(days=1, minutes=41)
    fields = {"date_range": {"from": start.isoformat(), "to": end.isoformat()}}
    _same(*await _both(seeded, metrics=ALL, **fields))
    _same(*await _both(seeded, metrics=ALL, dimensions=["page"], limit=10_000, **fields))


async def test_ordering_and_pages_of_rows_follow_the_raw_path(seeded: Seeded) -> None:
    for order_by in (["pageviews", "desc"], ["events", "asc"], ["page", "desc"]):
        fields = {"metrics": ["pageviews", "events"], "dimensions": ["page"], "date_range": "7d"}
        fast, raw = await _both(seeded, order_by=[order_by], limit=5, offset=3, **fields)
        assert [(r.dimensions, r.metrics) for r in fast.results] == [
            (r.dimensions, r.metrics) for r in raw.results
        ]
        assert fast.meta.next_offset == raw.meta.next_offset


@pytest.mark.parametrize(
    "fields",
    [
        {"metrics": ["visitors"], "dimensions": ["page", "country"]},
        {"metrics": ["visitors"], "dimensions": ["page"], "filters": [["country", "is", ["US"]]]},
        {"metrics": ["bounce_rate"], "filters": [["country", "is", ["US"]]]},
        {"metrics": ["visitors"], "dimensions": ["props:plan"]},
        {"metrics": ["visitors", "pageviews"], "dimensions": ["source"]},
        {
            "metrics": ["visitors"],
            "dimensions": ["source"],
            "date_range": {"from": "2025-03-01T05:00:00Z", "to": "2025-03-03T00:00:00Z"},
        },
        {
            "metrics": ["visitors"],
            "dimensions": ["time:hour"],
            "timezone": "Asia/Kolkata",
            "date_range": "24h",
        },
        {"metrics": ["visitors"], "dimensions": ["time:minute"], "date_range": "30m"},
        {"metrics": ["visitors"], "date_range": "30m"},
    ],
)
async def test_other_shapes_are_read_from_raw_events(seeded: Seeded, fields: dict[str, Any]) -> None:
    query = msgspec.convert({"date_range": "7d", **fields}, StatsQuery)
    assert plan(check(query, datetime.now(UTC), "UTC"), datetime.now(UTC)) is None
    result = await seeded.fast.run(seeded.scope, seeded.site, query)
    assert not result.meta.approximate


def test_candidates_that_could_miss_a_value_are_not_trusted() -> None:
    query = check(StatsQuery(metrics=["visitors"], dimensions=["page"], limit=2), datetime.now(UTC), "UTC")
    pruned = RollupPlan(table="traffic", dimension="page", spans=(), candidates=20, bound="events")
    rows = [("/a", 100), ("/b", 90), ("/c", 80)]
    assert certain(query, pruned, rows, left_out=0)
    assert certain(query, pruned, rows, left_out=70)
    # A left-out page with 79 events may have up to 79 visitors: about the last row's 80.
    assert not certain(query, pruned, rows, left_out=79)
    assert not certain(query, pruned, rows[:2], left_out=10)


async def _folded_days(seeded: Seeded) -> set[date]:
    sql = (
        "SELECT DISTINCT day FROM visit_days FINAL "
        "WHERE tenant_id = {t:String} AND site_id = {s:String} AND dimension = ''"
    )
    params = {"t": seeded.scope.tenant_id, "s": seeded.site.id}
    result = await seeded.warehouse.run(seeded.warehouse.client.query, sql, parameters=params)
    return {row[0] for row in result.result_rows}
