"""Queries answered from visits as rows give the raw path's figures exactly (pulse.stats.visit_plan).

A site's last ten days of history are generated inside the stack's chDB (pulse.loadgen.history).
What the rollups leave to raw events because of a filter on where visits came from, entered or
left, or on country, device, browser or OS, is asked of both paths: the same rows and figures come
back, past days read from their folds (visit_rows) and today folded from raw events as it is read.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import msgspec
import pytest

from pulse.oltp.goals import Goals
from pulse.stats.compile import VISIT_CONSTANT
from pulse.stats.query import SESSION_DIMENSIONS, Metric, StatsQuery, check
from pulse.stats.query_result import QueryResult
from pulse.stats.visit_plan import visit_plan
from stack import Stack
from test_stats_rollups import CARDS, Seeded, _seed, add_late_pageview

# Every visit attribute but utm_content and utm_term, which the history leaves empty, and pages.
DIMENSIONS = [
    "page",
    *(d for d in (*SESSION_DIMENSIONS, *VISIT_CONSTANT) if d not in ("utm_content", "utm_term")),
]
ALL: list[Metric] = CARDS


@pytest.fixture(scope="module")
async def seeded(stack: Stack) -> Seeded:
    return await _seed(stack, "Visit rows", 12_000)


async def _both(seeded: Seeded, **fields: Any) -> tuple[QueryResult, QueryResult]:
    query = msgspec.convert(fields, StatsQuery)
    now = datetime.now(UTC)
    assert visit_plan(check(query, now, seeded.site.timezone), now) is not None, "not a visit rows query"
    fast = await seeded.fast.run(seeded.scope, seeded.site, query)
    return fast, await seeded.raw.run(seeded.scope, seeded.site, query)


def _same(fast: QueryResult, raw: QueryResult) -> None:
    assert raw.results, "nothing to compare"
    assert msgspec.to_builtins(fast) == msgspec.to_builtins(raw)


async def _visit_rows(seeded: Seeded) -> int:
    sql = "SELECT count() FROM visit_rows WHERE tenant_id = {t:String} AND site_id = {s:String}"
    params = {"t": seeded.scope.tenant_id, "s": seeded.site.id}
    result = await seeded.warehouse.run(seeded.warehouse.client.query, sql, parameters=params)
    return int(result.result_rows[0][0])


@pytest.mark.parametrize(
    "filters",
    [
        [["country", "is", ["DE"]]],
        [["device", "is_not", ["desktop"]], ["browser", "matches", ["^(Chrome|Firefox)$"]]],
        [["channel", "is", ["search", "social"]]],
        [["entry_page", "contains", ["/"]], ["os", "is_not", ["Linux"]]],
        [["utm_medium", "is_not", [""]]],
        [["page", "is", ["/"]]],
        [["page", "contains", ["/docs"]], ["country", "is_not", ["US"]]],
        [["page", "matches", ["^/"]], ["page", "is_not", ["/pricing", "/"]]],
    ],
)
@pytest.mark.parametrize("period", ["30d", "7d", "today", "month"])
async def test_filtered_cards(seeded: Seeded, filters: list[Any], period: str) -> None:
    _same(*await _both(seeded, metrics=ALL, filters=filters, date_range=period))


@pytest.mark.parametrize("dimension", DIMENSIONS)
@pytest.mark.parametrize(
    "filters",
    [
        [["country", "is_not", ["US"]], ["device", "is", ["desktop", "mobile"]]],
        [["page", "is_not", ["/"]], ["channel", "is_not", ["direct"]]],
    ],
)
async def test_filtered_breakdowns(seeded: Seeded, dimension: str, filters: list[Any]) -> None:
    fast, raw = await _both(
        seeded, metrics=ALL, dimensions=[dimension], filters=filters, date_range="30d", limit=10_000
    )
    _same(fast, raw)


async def test_pages_of_rows_and_other_orders(seeded: Seeded) -> None:
    fields = {
        "metrics": ["bounce_rate", "visitors", "visit_duration"],
        "dimensions": ["source"],
        "filters": [["country", "is", ["DE", "GB", "FR"]]],
        "date_range": "30d",
        "order_by": [["bounce_rate", "asc"]],
        "limit": 2,
        "offset": 1,
    }
    fast, raw = await _both(seeded, **fields)
    _same(fast, raw)
    assert fast.meta.has_more


async def test_a_range_ending_before_now_stops_its_last_visits_where_the_raw_path_does(
    seeded: Seeded,
) -> None:
    start = datetime.combine((seeded.end - timedelta(days=4)).date(), datetime.min.time(), UTC)
    end = start + timedelta(days=2, hours=13, minutes=7)
    fields = {
        "date_range": {"from": start.isoformat(), "to": end.isoformat()},
        "filters": [["device", "is", ["mobile"]]],
    }
    _same(*await _both(seeded, metrics=ALL, **fields))
    _same(*await _both(seeded, metrics=["visitors", "visits"], dimensions=["exit_page"], limit=5, **fields))


async def test_past_days_are_folded_once(stack: Stack) -> None:
    seeded = await _seed(stack, "Visit rows once", 3_000)
    fields = {"metrics": CARDS, "filters": [["country", "is_not", ["US"]]], "date_range": "7d"}
    _same(*await _both(seeded, **fields))
    folded = await _visit_rows(seeded)
    assert folded > 0
    _same(*await _both(seeded, **fields))
    assert await _visit_rows(seeded) == folded


async def test_a_late_event_makes_its_day_fold_again(stack: Stack) -> None:
    seeded = await _seed(stack, "Visit rows late", 3_000)
    day = (seeded.end - timedelta(days=3)).date()
    fields = {
        "metrics": CARDS,
        "filters": [["country", "is_not", ["XX"]]],
        "date_range": {"from": day.isoformat(), "to": day.isoformat()},
    }
    before, _ = await _both(seeded, **fields)
    await add_late_pageview(seeded, day)
    fast, raw = await _both(seeded, **fields)
    _same(fast, raw)
    assert fast.results[0].metrics[2] == before.results[0].metrics[2] + 1


@pytest.fixture(scope="module")
async def goals(seeded: Seeded, stack: Stack) -> None:
    site = seeded.site
    for name, kind, pattern in [
        ("Signup", "event", "signup"),
        ("Docs", "page", "/docs/*"),
        ("Home", "page", "/"),
    ]:
        await Goals(stack.engine).create(site.tenant_id, site.id, name, kind, pattern)


@pytest.mark.parametrize(
    "filters",
    [
        [],
        [["country", "is_not", ["US"]], ["channel", "is_not", ["direct"]]],
        [["page", "contains", ["/docs", "/pricing"]]],
    ],
)
@pytest.mark.parametrize("period", ["30d", "7d"])
async def test_goals_and_their_conversion_rates(
    seeded: Seeded, goals: None, filters: list[Any], period: str
) -> None:
    fields = {"metrics": ["visitors", "events", "conversion_rate", "visits"], "dimensions": ["goal"]}
    _same(*await _both(seeded, **fields, filters=filters, date_range=period))


@pytest.mark.parametrize(
    "fields",
    [
        {"dimensions": ["source"], "filters": [["goal", "is", ["Signup"]]]},
        {"dimensions": ["goal"], "filters": [["event", "is", ["signup"]]]},
        {"dimensions": ["event"], "metrics": ["visitors", "events"], "filters": [["country", "is", ["DE"]]]},
        {"dimensions": ["source"], "filters": [["event", "is", ["signup"]]]},
        {"dimensions": ["page"], "filters": [["hostname", "is", ["a.example"]]]},
        {"dimensions": ["country"], "metrics": ["visitors", "conversion_rate"]},
        {"dimensions": ["source"], "filters": [["country", "is", ["DE"]]], "date_range": "24h"},
        {"dimensions": ["source", "time:day"], "filters": [["country", "is", ["DE"]]]},
        {"dimensions": ["country"], "filters": [["props:plan", "is", ["pro"]]]},
    ],
)
async def test_what_visit_rows_do_not_answer(seeded: Seeded, fields: dict[str, Any]) -> None:
    query = msgspec.convert({"metrics": ["visitors"], "date_range": "7d"} | fields, StatsQuery)
    now = datetime.now(UTC)
    assert visit_plan(check(query, now, "UTC"), now) is None
