"""The overview's stats queries timed one by one, rollups against raw events (bench/dashboard.py step 2).

    uv run python bench/dashboard_panels.py SEEDED_JSON

Run as a child process: the seeded chDB path is then this process's only while it runs. Prints a
line per query and view, and last one JSON object with panel_p95_ms, the rollup path's p95 over
every query of both views.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from functools import partial

import msgspec

from freshness import percentile
from pulse.oltp.accounts import Site
from pulse.oltp.goals import Goal
from pulse.settings import load_settings
from pulse.stats.overview import CARD_METRICS, PANEL_ROWS, PANELS, OverviewQuery, panel_query
from pulse.stats.overview_periods import Window, resolve_period
from pulse.stats.query import Filter, Metric, StatsQuery, ValidQuery, check
from pulse.stats.query_service import StatsQueries
from pulse.stats.ranges import DateRange
from pulse.stats.rollup_plan import plan
from pulse.stats.visit_plan import visit_plan
from pulse.tenancy import TenantScope
from pulse.warehouse.client import Warehouse
from pulse.warehouse.reader import ScopedReader, SharedDatabase

ROUNDS = int(os.environ.get("BENCH_ROUNDS", "20"))
RAW_ROUNDS = int(os.environ.get("BENCH_RAW_ROUNDS", "1"))
VIEWS: dict[str, list[Filter]] = {"unfiltered": [], "filtered": [("country", "is", ["DE"])]}
TARGET_MS = 50.0


class GivenGoals:
    """Two goals for the goals panel's query: the seeded site has none, so its page shows no goals panel."""

    def __init__(self, site: Site) -> None:
        common = {"tenant_id": site.tenant_id, "site_id": site.id, "created_at": 0}
        self._goals = [
            Goal(id="signup", name="Signup", kind="event", pattern="signup", **common),
            Goal(id="pricing", name="Pricing", kind="page", pattern="/pricing", **common),
        ]

    async def list(self, tenant_id: str, site_id: str) -> list[Goal]:
        return self._goals


def overview_queries(site: Site, filters: list[Filter]) -> dict[str, StatsQuery]:
    """The queries pulse.stats.overview runs for the page, by name."""
    period = resolve_period("30d", site.timezone, datetime.now(UTC))
    ask = OverviewQuery(period=period, filters=filters, compare=True, has_goals=True)

    def query(window: Window, metrics: list[Metric], dimensions: list[str], limit: int) -> StatsQuery:
        return StatsQuery(
            metrics=metrics,
            dimensions=dimensions,
            filters=filters,
            date_range=DateRange(start=window.start.isoformat(), end=window.end.isoformat()),
            timezone=period.timezone,
            limit=limit,
        )

    chart: list[Metric] = ["visitors", "pageviews"]
    queries = {
        "cards": query(period.current, list(CARD_METRICS), [], PANEL_ROWS),
        "cards (previous)": query(period.previous_to_date, list(CARD_METRICS), [], PANEL_ROWS),
        "chart": query(period.current, chart, [f"time:{period.grain}"], 10_000),
        "chart (previous)": query(period.previous, chart, [f"time:{period.grain}"], 10_000),
    }
    return queries | {key: panel_query(ask, key, PANEL_ROWS) for key in PANELS}


async def timed(run: Callable[[], Awaitable[object]], rounds: int) -> list[float]:
    times = []
    for _ in range(rounds):
        started = time.perf_counter()
        await run()
        times.append((time.perf_counter() - started) * 1000)
    return times


def _answered_from(query: ValidQuery, now: datetime) -> str:
    if plan(query, now):
        return "rollups"
    return "visit rows" if visit_plan(query, now) else "raw events"


async def measure(seeded: dict[str, str]) -> float:
    settings = load_settings({"PULSE_HOME": seeded["home"]})
    warehouse = Warehouse(settings.effective_clickhouse_url, settings.clickhouse_database)
    site = Site(
        id=seeded["site_id"],
        tenant_id=seeded["tenant_id"],
        name="Bench",
        domain="bench.example",
        disabled=False,
        created_at=0,
        timezone=seeded["timezone"],
    )
    scope = TenantScope.of_user(site.tenant_id, "bench", "viewer")
    reader = ScopedReader(warehouse, SharedDatabase(settings.clickhouse_database))
    fast = StatsQueries(reader, GivenGoals(site))
    raw = StatsQueries(reader, GivenGoals(site), rollups=False)
    every: list[float] = []
    try:
        for view, filters in VIEWS.items():
            queries = overview_queries(site, filters)
            print(f"{view} (last 30 days{', ' + ' '.join(str(p) for p in filters[0]) if filters else ''}):")
            first = {
                name: (await timed(partial(fast.run, scope, site, q), 1))[0] for name, q in queries.items()
            }
            print(f"  first run of each (folds the past days): {sum(first.values()):.0f} ms in all")
            for name, query in queries.items():
                now = datetime.now(UTC)
                answered = _answered_from(check(query, now, site.timezone), now)
                times = await timed(partial(fast.run, scope, site, query), ROUNDS)
                every += times
                p95 = percentile(times, 0.95)
                line = f"  {name:<17} {answered:<11} p50 {percentile(times, 0.5):8.1f} ms   p95 {p95:8.1f} ms"
                if RAW_ROUNDS:
                    base = percentile(await timed(partial(raw.run, scope, site, query), RAW_ROUNDS), 0.95)
                    line += f"   raw p95 {base:8.1f} ms   {base / p95:7.1f}x"
                print(f"{line}{'' if p95 <= TARGET_MS else '   over ' + str(int(TARGET_MS)) + ' ms'}")
            panels = [q for name, q in queries.items() if name in PANELS]
            batch = await timed(partial(fast.run_many, scope, site, panels), ROUNDS)
            print(
                f"  the {len(panels)} panels as the page reads them (run_many): "
                f"p50 {percentile(batch, 0.5):8.1f} ms   p95 {percentile(batch, 0.95):8.1f} ms"
            )
    finally:
        warehouse.close()
    panel_p95 = percentile(every, 0.95)
    print(f"every panel query, both views: p95 {panel_p95:.1f} ms (target {TARGET_MS:.0f} ms)")
    return panel_p95


def main() -> None:
    seeded = msgspec.json.decode(sys.argv[1])
    print(json.dumps({"panel_p95_ms": round(asyncio.run(measure(seeded)), 1)}))


if __name__ == "__main__":
    main()
