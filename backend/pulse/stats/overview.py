"""The site overview's figures: metric cards, the timeseries, the breakdown panels.

Every figure is a stats query (pulse.stats.query) run by StatsQueries, so the overview reads
what the query API reads and gets faster with it; the independent queries run concurrently.
The caller's filters hold for every query; a panel may add its own (custom events leave out
pageviews, UTM panels leave out the visits without the tag).
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import NamedTuple

import msgspec

from pulse.oltp.accounts import Site
from pulse.stats.overview_periods import OverviewPeriod, Window
from pulse.stats.query import Filter, Metric, StatsQuery
from pulse.stats.query_result import QueryResult
from pulse.stats.query_service import StatsQueries
from pulse.stats.ranges import DateRange
from pulse.tenancy import TenantScope

CARD_METRICS: tuple[Metric, ...] = (
    "visitors",
    "visits",
    "pageviews",
    "views_per_visit",
    "bounce_rate",
    "visit_duration",
)
PANEL_ROWS = 10
DETAIL_ROWS = 100
EXPORT_ROWS = 10_000


class PanelSpec(NamedTuple):
    title: str
    dimension: str
    # Shown after visitors, with their column headings.
    metrics: tuple[Metric, ...]
    headings: tuple[str, ...]
    filters: tuple[Filter, ...] = ()


def _tagged(dimension: str) -> tuple[Filter, ...]:
    return ((dimension, "is_not", [""]),)


# URL segment → panel. Order is the order of the tabs within each group.
PANELS: dict[str, PanelSpec] = {
    "channels": PanelSpec("Channels", "channel", (), ()),
    "sources": PanelSpec("Sources", "source", (), ()),
    "referrers": PanelSpec("Referrers", "referrer", (), ()),
    "utm-sources": PanelSpec("UTM sources", "utm_source", (), (), _tagged("utm_source")),
    "utm-mediums": PanelSpec("UTM mediums", "utm_medium", (), (), _tagged("utm_medium")),
    "utm-campaigns": PanelSpec("UTM campaigns", "utm_campaign", (), (), _tagged("utm_campaign")),
    "pages": PanelSpec("Top pages", "page", ("pageviews",), ("Views",)),
    "entry-pages": PanelSpec("Entry pages", "entry_page", ("visits",), ("Entrances",)),
    "exit-pages": PanelSpec("Exit pages", "exit_page", ("visits",), ("Exits",)),
    "countries": PanelSpec("Countries", "country", (), ()),
    "devices": PanelSpec("Devices", "device", (), ()),
    "browsers": PanelSpec("Browsers", "browser", (), ()),
    "os": PanelSpec("Operating systems", "os", (), ()),
    "events": PanelSpec(
        "Custom events", "event", ("events",), ("Events",), (("event", "is_not", ["pageview"]),)
    ),
    "goals": PanelSpec("Goals", "goal", ("events", "conversion_rate"), ("Completions", "CR")),
}


class Figures(msgspec.Struct, frozen=True):
    """CARD_METRICS of a period, by name."""

    values: dict[str, float]


class Series(msgspec.Struct, frozen=True):
    """The chart: bucket starts, and per bucket the figures (None for buckets still to come)."""

    t: list[int]
    visitors: list[int | None]
    pageviews: list[int | None]
    previous_visitors: list[int | None]
    previous_pageviews: list[int | None]


class PanelRow(msgspec.Struct, frozen=True):
    value: str
    visitors: int
    # PanelSpec.metrics, in order.
    extra: list[int | float]
    # The bar: visitors as a share of the panel's top row, 0 to 100.
    share: int


class Panel(msgspec.Struct, frozen=True):
    key: str
    spec: PanelSpec
    rows: list[PanelRow]
    has_more: bool
    # Why it is empty other than for want of visits ("this site has no goals").
    unavailable: str | None = None


class Overview(msgspec.Struct, frozen=True):
    current: Figures
    previous: Figures | None
    series: Series
    panels: dict[str, Panel]


class OverviewQuery(msgspec.Struct, frozen=True):
    period: OverviewPeriod
    filters: list[Filter]
    compare: bool
    has_goals: bool


async def overview(queries: StatsQueries, scope: TenantScope, site: Site, ask: OverviewQuery) -> Overview:
    period = ask.period

    async def figures(window: Window) -> Figures:
        result = await queries.run(scope, site, _query(ask, window, list(CARD_METRICS), []))
        row = result.results[0].metrics if result.results else [0] * len(CARD_METRICS)
        return Figures(values={m: float(v) for m, v in zip(CARD_METRICS, row, strict=True)})

    timeseries = [f"time:{period.grain}"]
    chart_metrics: list[Metric] = ["visitors", "pageviews"]
    series = _series(queries, scope, site, _query(ask, period.current, chart_metrics, timeseries))
    # Tasks, not awaits: every query is under way before the first answer is waited for.
    current = asyncio.ensure_future(figures(period.current))
    now = asyncio.ensure_future(series)
    panels = asyncio.ensure_future(_panels(queries, scope, site, ask))
    previous = before = None
    if ask.compare:
        previous = asyncio.ensure_future(figures(period.previous_to_date))
        before = asyncio.ensure_future(
            _series(queries, scope, site, _query(ask, period.previous, chart_metrics, timeseries))
        )
    await asyncio.gather(current, now, panels, *(t for t in (previous, before) if t is not None))
    return Overview(
        current=current.result(),
        previous=previous.result() if previous else None,
        series=_chart(period, now.result(), before.result() if before else None),
        panels=panels.result(),
    )


async def panel(
    queries: StatsQueries, scope: TenantScope, site: Site, ask: OverviewQuery, key: str, limit: int
) -> Panel:
    if (missing := _unavailable(ask, key)) is not None:
        return missing
    return _panel(key, await queries.run(scope, site, panel_query(ask, key, limit)))


async def _panels(
    queries: StatsQueries, scope: TenantScope, site: Site, ask: OverviewQuery
) -> dict[str, Panel]:
    """Every panel of the page, read in one batch (StatsQueries.run_many)."""
    missing = {key: found for key in PANELS if (found := _unavailable(ask, key)) is not None}
    asked = [key for key in PANELS if key not in missing]
    results = await queries.run_many(scope, site, [panel_query(ask, key, PANEL_ROWS) for key in asked])
    answered = {key: _panel(key, result) for key, result in zip(asked, results, strict=True)}
    return {key: missing.get(key) or answered[key] for key in PANELS}


def _unavailable(ask: OverviewQuery, key: str) -> Panel | None:
    spec = PANELS[key]
    if spec.dimension == "goal" and not ask.has_goals:
        return Panel(key=key, spec=spec, rows=[], has_more=False, unavailable="This site has no goals yet.")
    return None


def _panel(key: str, result: QueryResult) -> Panel:
    top = max((int(r.metrics[0]) for r in result.results), default=0)
    rows = [
        PanelRow(
            value=r.dimensions[0],
            visitors=int(r.metrics[0]),
            extra=list(r.metrics[1:]),
            share=round(100 * int(r.metrics[0]) / top) if top else 0,
        )
        for r in result.results
    ]
    return Panel(key=key, spec=PANELS[key], rows=rows, has_more=result.meta.has_more)


def panel_query(ask: OverviewQuery, key: str, limit: int) -> StatsQuery:
    spec = PANELS[key]
    metrics: list[Metric] = ["visitors", *spec.metrics]
    query = _query(ask, ask.period.current, metrics, [spec.dimension], extra_filters=spec.filters)
    return msgspec.structs.replace(query, limit=limit)


def _query(
    ask: OverviewQuery,
    window: Window,
    metrics: list[Metric],
    dimensions: list[str],
    extra_filters: Sequence[Filter] = (),
) -> StatsQuery:
    return StatsQuery(
        metrics=metrics,
        dimensions=dimensions,
        filters=[*ask.filters, *extra_filters],
        date_range=DateRange(start=_instant(window.start), end=_instant(window.end)),
        timezone=ask.period.timezone,
        limit=PANEL_ROWS,
    )


async def _series(
    queries: StatsQueries, scope: TenantScope, site: Site, query: StatsQuery
) -> dict[str, tuple[int, int]]:
    """Bucket key → (visitors, pageviews)."""
    bounded = msgspec.structs.replace(query, limit=10_000)
    result: QueryResult = await queries.run(scope, site, bounded)
    return {r.dimensions[0]: (int(r.metrics[0]), int(r.metrics[1])) for r in result.results}


def _chart(
    period: OverviewPeriod, now: dict[str, tuple[int, int]], before: dict[str, tuple[int, int]] | None
) -> Series:
    current = period.buckets(period.current)
    # Buckets after the present have no figures yet: the line stops at now instead of dropping to 0.
    until = int(datetime.now(UTC).timestamp())
    figures = [now.get(b.key, (0, 0)) if b.t <= until else None for b in current]
    previous: list[tuple[int, int] | None] = [None] * len(current)
    if before is not None:
        for i, b in enumerate(period.buckets(period.previous)[: len(current)]):
            previous[i] = before.get(b.key, (0, 0))
    return Series(
        t=[b.t for b in current],
        visitors=[f[0] if f else None for f in figures],
        pageviews=[f[1] if f else None for f in figures],
        previous_visitors=[p[0] if p else None for p in previous] if before is not None else [],
        previous_pageviews=[p[1] if p else None for p in previous] if before is not None else [],
    )


def _instant(at: datetime) -> str:
    return at.astimezone(UTC).isoformat()
