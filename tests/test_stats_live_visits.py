"""Today's visits that are over are folded as the day goes on, and read with the rest as the raw
path reads them (pulse.stats.live_visits): the same figures, whatever arrives after a fold.

A site's last ten days of history end now (pulse.loadgen.history). Filtered queries over ranges
that reach now read today's folded visits and, from raw events, the visits with an event since.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import msgspec
import pytest

from pulse.stats.live_visits import GAP, LiveVisits, cutoff_at
from pulse.stats.query import StatsQuery, check
from pulse.stats.query_result import QueryResult, shape
from pulse.stats.visit_compile import compile_visits
from pulse.stats.visit_days import FoldedDays
from pulse.stats.visit_plan import visit_plan
from pulse.warehouse.reader import ScopedReader, SharedDatabase
from stack import Stack
from test_stats_rollups import CARDS, Seeded, _seed

FILTERED: dict[str, Any] = {"metrics": CARDS, "filters": [["country", "is_not", ["XX"]]]}


def _past_the_first_cutoff(at: datetime) -> None:
    midnight = at.replace(hour=0, minute=0, second=0, microsecond=0)
    if cutoff_at(at) - GAP <= midnight:
        pytest.skip("no visit of today can be over yet (the first 40 minutes of a UTC day)")


async def _both(seeded: Seeded, **fields: Any) -> tuple[QueryResult, QueryResult]:
    query = msgspec.convert(fields, StatsQuery)
    fast = await seeded.fast.run(seeded.scope, seeded.site, query)
    return fast, await seeded.raw.run(seeded.scope, seeded.site, query)


def _same(fast: QueryResult, raw: QueryResult) -> None:
    assert raw.results, "nothing to compare"
    assert msgspec.to_builtins(fast) == msgspec.to_builtins(raw)


async def _live(seeded: Seeded) -> list[tuple[int, int]]:
    """(generation, rows) of the site's live folds of today."""
    sql = """SELECT generation, count() FROM visit_rows_live FINAL
WHERE tenant_id = {t:String} AND site_id = {s:String} AND day = today() GROUP BY generation ORDER BY generation"""
    params = {"t": seeded.scope.tenant_id, "s": seeded.site.id}
    result = await seeded.warehouse.run(seeded.warehouse.client.query, sql, parameters=params)
    return [(int(g), int(n)) for g, n in result.result_rows]


async def _insert_into_visit(seeded: Seeded, latest: bool, event_id: str) -> None:
    """A pageview one minute after today's first event (of a visit long over), or its latest (of a
    visit under way), into that event's visit."""
    sql = f"""
INSERT INTO events
SELECT * REPLACE (ts + INTERVAL 1 MINUTE AS ts, MD5({{e:String}}) AS event_id, 'pageview' AS name)
FROM (
    SELECT * FROM events
    WHERE tenant_id = {{t:String}} AND site_id = {{s:String}} AND toDate(ts) = today() AND session_id != 0
    ORDER BY ts {"DESC" if latest else "ASC"}
    LIMIT 1
)
"""  # noqa: S608 - the order is one of two
    params = {"t": seeded.scope.tenant_id, "s": seeded.site.id, "e": event_id}
    await seeded.warehouse.run(seeded.warehouse.client.command, sql, parameters=params)


@pytest.mark.parametrize(
    "fields",
    [
        {**FILTERED, "date_range": "today"},
        {**FILTERED, "date_range": "7d"},
        {**FILTERED, "dimensions": ["source"], "date_range": "today"},
        {**FILTERED, "metrics": ["visitors", "pageviews"], "dimensions": ["page"], "date_range": "today"},
        {"metrics": CARDS, "filters": [["page", "contains", ["/docs"]]], "date_range": "30d"},
    ],
)
async def test_today_s_visits_that_are_over_are_read_from_their_fold(stack: Stack, fields: Any) -> None:
    _past_the_first_cutoff(datetime.now(UTC))
    seeded = await _seed(stack, "Live visits", 4_000)
    _same(*await _both(seeded, **fields))
    ((generation, rows),) = await _live(seeded)
    assert generation == 1
    assert rows > 0


async def test_an_event_late_into_a_folded_visit_begins_the_day_s_folds_again(stack: Stack) -> None:
    _past_the_first_cutoff(datetime.now(UTC))
    seeded = await _seed(stack, "Live visits late", 3_000)
    before, _ = await _both(seeded, **FILTERED, date_range="today")
    assert [g for g, _ in await _live(seeded)] == [1]
    # Into the day's first visit, which was over long before the cutoff.
    await _insert_into_visit(seeded, latest=False, event_id="late")
    fast, raw = await _both(seeded, **FILTERED, date_range="today")
    _same(fast, raw)
    assert fast.results[0].metrics[2] == before.results[0].metrics[2] + 1
    assert [g for g, _ in await _live(seeded)] == [1, 2]


async def test_visits_under_way_count_every_new_event_at_once(stack: Stack) -> None:
    _past_the_first_cutoff(datetime.now(UTC))
    seeded = await _seed(stack, "Live visits now", 3_000)
    before, _ = await _both(seeded, **FILTERED, date_range="today")
    await _insert_into_visit(seeded, latest=True, event_id="now")
    fast, raw = await _both(seeded, **FILTERED, date_range="today")
    _same(fast, raw)
    assert fast.results[0].metrics[2] == before.results[0].metrics[2] + 1
    assert [g for g, _ in await _live(seeded)] == [1]


async def test_each_fold_adds_the_visits_over_since_the_last_cutoff(stack: Stack) -> None:
    now = datetime.now(UTC)
    _past_the_first_cutoff(now - timedelta(hours=2))
    seeded = await _seed(stack, "Live visits steps", 3_000)
    reader = ScopedReader(seeded.warehouse, SharedDatabase(stack.settings.clickhouse_database))
    live = LiveVisits(reader, cache_s=0)
    earlier = await live.cut(seeded.scope, seeded.site.id, now - timedelta(hours=2))
    later = await live.cut(seeded.scope, seeded.site.id, now)
    assert earlier is not None
    assert later is not None
    assert (earlier.generation, later.generation) == (1, 1)
    assert earlier.cutoff < later.cutoff
    query = msgspec.convert({**FILTERED, "dimensions": ["channel"], "date_range": "today"}, StatsQuery)
    valid = check(query, now, seeded.site.timezone)
    visits = visit_plan(valid, now)
    assert visits is not None
    assert visits.reaches_now
    folds = await FoldedDays(reader, 0).folded(seeded.scope, seeded.site.id, visits.closed)
    raw = await seeded.raw.run(seeded.scope, seeded.site, query)
    assert raw.results
    # Read at either cutoff, the same visits: those over by then from the fold, the rest raw.
    for cut in (earlier, later):
        compiled = compile_visits(valid, seeded.site.id, folds, cut)
        rows = await reader.select(seeded.scope, compiled.query, compiled.params)
        assert msgspec.to_builtins(shape(valid, rows)) == msgspec.to_builtins(raw)
