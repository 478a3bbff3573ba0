"""Breakdowns read together answer as each read alone (StatsQueries.run_many).

When a filter keeps them off the rollups, the overview's panels by where visits came from, where
they entered and left, and by device, browser and OS are read from visits as rows in one pass
(pulse.stats.visit_plan). Read from raw events (a filter on a page, or rollups off), those by
where visits came from and entered and left are read in one pass, and those by page, device,
browser and OS in another. Every result must be the one the query gets by itself, row for row and
figure for figure, whatever the filters, and the raw path's own; queries that cannot be read
together still are read alone, in their place.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import msgspec
import pytest

from pulse.oltp.goals import Goals
from pulse.stats.query import StatsQuery
from pulse.stats.query_service import StatsQueries
from pulse.tenancy import TenantScope
from pulse.warehouse.reader import ScopedQuery, ScopedReader, SharedDatabase
from seeded_history import insert_history
from stack import Stack, Tenant

UTM = ["utm_source", "utm_medium", "utm_campaign"]


class CountingReader(ScopedReader):
    """The stack's real reader, noting which compiled query each read ran."""

    def __init__(self, *args: Any) -> None:
        super().__init__(*args)
        self.read: list[str] = []

    async def select(
        self, scope: TenantScope, query: ScopedQuery, params: Mapping[str, Any]
    ) -> Sequence[Sequence[Any]]:
        self.read.append(query.name)
        return await super().select(scope, query, params)


class Seeded(msgspec.Struct):
    tenant: Tenant
    reader: CountingReader
    queries: StatsQueries
    # Every query from raw events.
    raw: StatsQueries


@pytest.fixture(scope="module")
async def seeded(stack: Stack) -> Seeded:
    tenant, warehouse, _ = await insert_history(stack, "Breakdowns", 8_000, 5)
    reader = CountingReader(warehouse, SharedDatabase(stack.settings.clickhouse_database))
    goals = Goals(stack.engine)
    return Seeded(tenant, reader, StatsQueries(reader, goals), StatsQueries(reader, goals, rollups=False))


def _panels(filters: list[list[Any]], limit: int = 10) -> list[StatsQuery]:
    """What the overview asks, event and session breakdowns mixed."""
    fields: list[dict[str, Any]] = [
        {"dimensions": ["channel"]},
        {"dimensions": ["source"]},
        {"dimensions": ["page"], "metrics": ["visitors", "pageviews"]},
        {"dimensions": ["referrer"]},
        *({"dimensions": [d], "filters": [[d, "is_not", [""]]]} for d in UTM),
        {"dimensions": ["entry_page"], "metrics": ["visitors", "visits"]},
        {"dimensions": ["exit_page"], "metrics": ["visitors", "visits"]},
        {"dimensions": ["device"]},
        {"dimensions": ["browser"]},
        {"dimensions": ["os"]},
        {
            "dimensions": ["event"],
            "metrics": ["visitors", "events"],
            "filters": [["event", "is_not", ["pageview"]]],
        },
    ]
    return [
        msgspec.convert(
            {
                "metrics": ["visitors"],
                "date_range": "7d",
                "limit": limit,
                **f,
                "filters": [*filters, *f.get("filters", [])],
            },
            StatsQuery,
        )
        for f in fields
    ]


async def _alone_and_together(
    seeded: Seeded, queries: list[StatsQuery], raw: bool = True
) -> tuple[list[Any], list[Any]]:
    """Each query run alone and all run together, from raw events or, with `raw` False, as the
    dashboard reads them (rollups, visit rows, raw events)."""
    engine = seeded.raw if raw else seeded.queries
    scope = TenantScope.of_user(seeded.tenant.tenant_id, "test", "viewer")
    site = seeded.tenant.site
    alone = [await engine.run(scope, site, q) for q in queries]
    seeded.reader.read.clear()
    together = await engine.run_many(scope, site, queries)
    return [msgspec.to_builtins(r) for r in alone], [msgspec.to_builtins(r) for r in together]


@pytest.mark.parametrize(
    "filters",
    [
        [["country", "is", ["DE"]]],
        [["country", "is_not", ["US", "DE"]], ["device", "is", ["desktop"]]],
        [["page", "contains", ["/docs"]]],
        [["source", "is", ["Google"]]],
        [["utm_source", "is", ["newsletter"]], ["browser", "matches", ["^Chr"]]],
        [["entry_page", "is_not", ["/"]], ["country", "is", ["GB", "FR"]]],
    ],
)
async def test_filtered_session_breakdowns_read_together_answer_as_alone(
    seeded: Seeded, filters: list[list[Any]]
) -> None:
    alone, together = await _alone_and_together(seeded, _panels(filters))
    assert together == alone
    assert any(r["results"] for r in alone), "nothing to compare"
    # Fewer reads than queries: the eight session breakdowns in one, and those by page, device,
    # browser and OS in another.
    assert seeded.reader.read.count("stats_breakdowns") == 2
    assert len(seeded.reader.read) < len(alone) - 6


async def test_the_overview_s_filtered_breakdowns_take_three_reads(seeded: Seeded) -> None:
    alone, together = await _alone_and_together(seeded, _panels([["country", "is", ["DE", "FR"]]]))
    assert together == alone
    # Session attributes, event attributes, and custom events (which leave out pageviews).
    assert sorted(seeded.reader.read) == ["stats_breakdowns", "stats_breakdowns", "stats_query"]


async def test_rows_past_the_limit_and_empty_values_are_as_alone(seeded: Seeded) -> None:
    queries = _panels([["country", "is", ["US", "DE", "GB"]]], limit=2)
    alone, together = await _alone_and_together(seeded, queries)
    assert together == alone
    assert all(r["meta"]["has_more"] for r in alone)
    utm = [r for q, r in zip(queries, alone, strict=True) if q.dimensions[0] in UTM]
    assert all("" not in [row["dimensions"][0] for row in r["results"]] for r in utm)
    # Without the filter on its own value, a UTM breakdown's top row is the visits without a tag.
    (untagged,) = _panels([["country", "is", ["US", "DE", "GB"]]])[4:5]
    bare = msgspec.structs.replace(untagged, filters=untagged.filters[:1])
    alone, together = await _alone_and_together(seeded, [bare, *queries[:2]])
    assert together == alone
    assert alone[0]["results"][0]["dimensions"] == [""]


@pytest.mark.parametrize("limit", [10, 2])
async def test_unfiltered_breakdowns_stay_on_the_rollups(seeded: Seeded, limit: int) -> None:
    alone, together = await _alone_and_together(seeded, _panels([], limit), raw=False)
    assert together == alone
    assert all(r["meta"]["approximate"] for r in together)
    assert "stats_breakdowns" not in seeded.reader.read
    # Those that merge every value's sketches in one read per table: by device, browser, OS and
    # custom event; by channel, source and UTM tags. Pages and referrers rank their values first.
    assert seeded.reader.read.count("stats_rollup_traffic_together") == 1
    assert seeded.reader.read.count("stats_rollup_visits_together") == 1
    if limit == 2:
        assert sum(r["meta"]["has_more"] for r in together) >= 8


@pytest.mark.parametrize("period", ["24h", "30d", "month"])
async def test_rollup_breakdowns_over_other_periods_answer_as_alone(seeded: Seeded, period: str) -> None:
    queries = [msgspec.structs.replace(q, date_range=period) for q in _panels([])]
    alone, together = await _alone_and_together(seeded, queries, raw=False)
    assert together == alone
    assert any(r["results"] for r in alone), "nothing to compare"


async def test_breakdowns_that_differ_in_more_than_the_attribute_are_read_alone(seeded: Seeded) -> None:
    germany, france = _panels([["country", "is", ["DE"]]]), _panels([["country", "is", ["FR"]]])
    shifted = msgspec.structs.replace(germany[1], offset=1)
    ordered = msgspec.structs.replace(germany[3], order_by=[("referrer", "asc")])
    queries = [germany[0], france[1], shifted, ordered]
    alone, together = await _alone_and_together(seeded, queries)
    assert together == alone
    assert seeded.reader.read.count("stats_breakdowns") == 0


@pytest.mark.parametrize(
    "filters",
    [
        [["country", "is", ["DE"]]],
        [["country", "is_not", ["US", "DE"]], ["device", "is", ["desktop"]]],
        [["source", "is", ["Google"]], ["device", "is_not", ["tablet"]]],
        [["utm_source", "is", ["newsletter"]], ["browser", "matches", ["^Chr"]]],
        [["entry_page", "is_not", ["/"]], ["country", "is", ["GB", "FR"]]],
        [["channel", "contains", ["a"]], ["os_version", "is_not", [""]]],
    ],
)
async def test_filtered_breakdowns_of_visits_read_from_visit_rows_answer_as_raw_events(
    seeded: Seeded, filters: list[list[Any]]
) -> None:
    queries = _panels(filters)
    raw, _ = await _alone_and_together(seeded, queries)
    alone, together = await _alone_and_together(seeded, queries, raw=False)
    assert together == alone
    assert alone == raw
    assert any(r["results"] for r in raw), "nothing to compare"
    # The eleven breakdowns of visit attributes in one read, pages from visit rows alone, custom
    # events from raw events (whose sort key skips the pageviews).
    assert sorted(seeded.reader.read) == ["stats_query", "stats_visit_breakdowns", "stats_visits"]


async def test_a_filter_on_events_keeps_the_breakdowns_on_raw_events(seeded: Seeded) -> None:
    queries = _panels([["event", "is_not", ["signup"]]])
    raw, _ = await _alone_and_together(seeded, queries)
    alone, together = await _alone_and_together(seeded, queries, raw=False)
    assert together == alone
    # Custom events, filtered on their own dimension only, are the rollups' (approximate).
    exact = [(a, r) for a, r in zip(alone, raw, strict=True) if not a["meta"]["approximate"]]
    assert len(exact) >= 11
    assert all(a == r for a, r in exact)
    assert "stats_visit_breakdowns" not in seeded.reader.read
