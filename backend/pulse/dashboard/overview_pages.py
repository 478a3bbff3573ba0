"""The site overview: metric cards, the timeseries, breakdown panels; a panel's detail page and CSV.

    GET /sites/{site_id}                       the overview (htmx: its #overview part)
    GET /sites/{site_id}/panels/{panel}        one panel, up to DETAIL_ROWS rows
    GET /sites/{site_id}/export/{panel}.csv    one panel as CSV, every row up to EXPORT_ROWS

All take the same query string (pulse.dashboard.overview_view). `Overviews` builds the pages'
context; the public share pages call it too with a share token, and then every link of the
page points under /share/{token} and nothing leads into the dashboard.
"""

from __future__ import annotations

import csv
import io
import math
import re
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, date, datetime, timedelta
from typing import Any, Protocol
from urllib.parse import quote

from litestar import Controller, Request, Response, get
from litestar.datastructures import State
from litestar.di import NamedDependency, Provide
from litestar.exceptions import NotFoundException
from litestar.params import FromPath
from litestar.response import Template

from pulse.dashboard.filters import DIMENSION_LABELS, UrlFilter
from pulse.dashboard.live_figures import LiveFigures, LiveSource
from pulse.dashboard.overview_format import cards, compact, exact, figure, value_label
from pulse.dashboard.overview_view import OverviewParams, ParamError
from pulse.dashboard.page_errors import PAGE_ERRORS
from pulse.dashboard.session import page_scope
from pulse.dashboard.site_admin import SiteAdmin
from pulse.oltp.accounts import Site
from pulse.oltp.goals import Goal
from pulse.settings import Settings
from pulse.stats.errors import QueryError
from pulse.stats.overview import (
    DETAIL_ROWS,
    EXPORT_ROWS,
    PANELS,
    OverviewQuery,
    Panel,
    overview,
    panel,
)
from pulse.stats.overview_periods import NAMED_PERIODS, PERIOD_LABELS, OverviewPeriod, Window, resolve_period
from pulse.stats.query_service import StatsQueries
from pulse.stats.service import StatsService
from pulse.tenancy import TenantScope
from pulse.warehouse.reader import WarehouseUnavailable

# The breakdown cards and their tabs, in page order.
GROUPS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("Sources", ("channels", "sources", "referrers")),
    ("Pages", ("pages", "entry-pages", "exit-pages")),
    ("Locations", ("countries",)),
    ("Devices", ("devices", "browsers", "os")),
    ("Campaigns", ("utm-sources", "utm-mediums", "utm-campaigns")),
    ("Events", ("events", "goals")),
)
# The overview's htmx trigger for a refresh after live ticks (ui/static/app.js dispatches it).
AFTER_TICKS = "pulse:refresh from:body"
# Characters CSV readers (Excel, LibreOffice, Sheets) take as the start of a formula.
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


class SiteGoals(Protocol):
    async def goals(self, scope: TenantScope, site_id: str) -> list[Goal]: ...


class Overviews:
    """The overview's pages for one site, for the dashboard and for share links."""

    def __init__(self, queries: StatsQueries, goals: SiteGoals, slow_s: float) -> None:
        """`slow_s`: PULSE_OVERVIEW_SLOW_S."""
        self._queries = queries
        self._goals = goals
        self._slow_s = slow_s

    async def context(
        self,
        scope: TenantScope,
        site: Site,
        params: OverviewParams,
        *,
        share_token: str | None = None,
        live: LiveFigures | None = None,
    ) -> dict[str, Any]:
        """The overview page's context; raises ParamError for what its figures cannot be read for."""
        ask = await self._ask(scope, site, params)
        started = time.monotonic()
        try:
            figures = await overview(self._queries, scope, site, ask)
        except QueryError as exc:
            raise ParamError(exc.message) from None
        page = _Page(site, params, ask.period, share_token)
        return {
            **page.common(scope, live, refresh_timer_s(time.monotonic() - started, self._slow_s)),
            "cards": cards(figures.current, figures.previous),
            "chart": {
                "t": figures.series.t,
                "visitors": figures.series.visitors,
                "pageviews": figures.series.pageviews,
                "previous_visitors": figures.series.previous_visitors,
                "previous_pageviews": figures.series.previous_pageviews,
                "timezone": ask.period.timezone,
                "grain": ask.period.grain,
            },
            "groups": [
                {"title": title, "tabs": [page.panel(figures.panels[key]) for key in keys]}
                for title, keys in GROUPS
            ],
        }

    async def panel_context(
        self,
        scope: TenantScope,
        site: Site,
        params: OverviewParams,
        key: str,
        *,
        share_token: str | None = None,
    ) -> dict[str, Any]:
        """One panel's detail page; raises NotFoundException for an unknown panel."""
        _known(key)
        ask = await self._ask(scope, site, params)
        try:
            found = await panel(self._queries, scope, site, ask, key, DETAIL_ROWS)
        except QueryError as exc:
            raise ParamError(exc.message) from None
        page = _Page(site, params, ask.period, share_token, detail=key)
        return {**page.common(scope, None), "detail": page.panel(found)}

    async def export_csv(
        self, scope: TenantScope, site: Site, params: OverviewParams, key: str
    ) -> Response[bytes]:
        _known(key)
        ask = await self._ask(scope, site, params)
        try:
            found = await panel(self._queries, scope, site, ask, key, EXPORT_ROWS)
        except QueryError as exc:
            raise ParamError(exc.message) from None
        spec = PANELS[key]
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\r\n")
        writer.writerow([spec.dimension, "visitors", *spec.metrics])
        for row in found.rows:
            writer.writerow([_inert(row.value), row.visitors, *row.extra])
        period = ask.period
        slug = re.sub(r"[^a-z0-9]+", "-", site.name.lower()).strip("-") or "site"
        name = f"{slug}-{key}-{period.first_day}-{period.last_day}.csv"
        return Response(
            out.getvalue().encode(),
            media_type="text/csv; charset=utf-8",
            headers={"Content-Disposition": f'attachment; filename="{name}"', "Cache-Control": "no-store"},
        )

    async def _ask(self, scope: TenantScope, site: Site, params: OverviewParams) -> OverviewQuery:
        goals = await self._goals.goals(scope, site.id)
        period = resolve_period(params.period, site.timezone, datetime.now(UTC), params.first, params.last)
        return OverviewQuery(
            period=period,
            filters=[f.query_filter() for f in params.filters],
            compare=params.compare,
            has_goals=bool(goals),
        )


def _known(key: str) -> None:
    if key not in PANELS:
        raise NotFoundException(f"no panel {key[:40]!r}: use {', '.join(PANELS)}")


def _inert(cell: str) -> str:
    """A cell a spreadsheet shows as text: a leading quote keeps =HYPERLINK(...) from running."""
    return "'" + cell if cell.startswith(_FORMULA_START) else cell


class _Page:
    """What every overview page shows: links keep the period and filters, under the right base."""

    def __init__(
        self,
        site: Site,
        params: OverviewParams,
        period: OverviewPeriod,
        share_token: str | None,
        detail: str | None = None,
    ) -> None:
        self.site = site
        self.params = params
        self.period = period
        self.share = share_token is not None
        self.base = (
            f"/share/{quote(share_token, safe='')}" if share_token is not None else f"/sites/{site.id}"
        )
        # The page's own path: its period, compare and filter links stay on it.
        self.here = f"{self.base}/panels/{detail}" if detail else self.base

    def href(self, query: str, path: str = "") -> str:
        return f"{self.base}{path}?{query}"

    def here_href(self, query: str) -> str:
        return f"{self.here}?{query}"

    def common(
        self, scope: TenantScope, live: LiveFigures | None, timer_s: int | None = None
    ) -> dict[str, Any]:
        """`timer_s`: refresh_timer_s of the view's read."""
        params, period = self.params, self.period
        return {
            "site": self.site,
            "tenant": None if self.share else scope,
            "share": self.share,
            "base": self.base,
            "here": self.here,
            "back_href": self.href(params.query()),
            "view": params,
            "period": period,
            "period_label": _period_label(period),
            "previous_label": _window_label(period, period.previous),
            "periods": [
                {
                    "label": PERIOD_LABELS[p],
                    "href": self.here_href(params.at_period(p)),
                    "active": p == params.period,
                }
                for p in NAMED_PERIODS
            ],
            "compare_href": self.here_href(params.compared(not params.compare)),
            "filters": [
                {
                    "label": f.label,
                    "value": value_label(f.dimension, f.value),
                    "remove": self.here_href(params.without_filter(i)),
                }
                for i, f in enumerate(params.filters)
            ],
            "clear_filters": self.here_href(params.unfiltered()),
            "self_href": self.here_href(params.query()),
            "live": live,
            "refresh": _refresh(period, live, self.share, timer_s),
            "slow_refresh_s": timer_s if _refresh(period, live, self.share) == AFTER_TICKS else None,
        }

    def panel(self, found: Panel) -> dict[str, Any]:
        spec, params = found.spec, self.params
        active = {f.value for f in params.filters if f.dimension == spec.dimension and f.op == "is"}
        rows = []
        for row in found.rows:
            on = row.value in active
            rows.append(
                {
                    "label": value_label(spec.dimension, row.value),
                    "raw": row.value,
                    # A row already filtered on is the way back out of that filter.
                    "href": self.href(
                        _toggled(params, spec.dimension, row.value)
                        if on
                        else params.filtered(spec.dimension, row.value)
                    ),
                    "active": on,
                    "visitors": compact(row.visitors),
                    "visitors_exact": exact("visitors", row.visitors),
                    "extra": [figure(m, v) for m, v in zip(spec.metrics, row.extra, strict=True)],
                    "share": row.share,
                }
            )
        query = params.query()
        return {
            "key": found.key,
            "title": spec.title,
            "dimension": DIMENSION_LABELS[spec.dimension],
            "headings": spec.headings,
            "rows": rows,
            "has_more": found.has_more,
            "more_href": self.href(query, f"/panels/{found.key}"),
            "csv_href": self.href(query, f"/export/{found.key}.csv"),
            "unavailable": found.unavailable,
        }


def _toggled(params: OverviewParams, dimension: str, value: str) -> str:
    index = params.filters.index(UrlFilter(dimension=dimension, op="is", value=value))
    return params.without_filter(index)


def _period_label(period: OverviewPeriod) -> str:
    if period.choice != "custom":
        return PERIOD_LABELS[period.choice]
    return _days(period.first_day, period.last_day)


def _window_label(period: OverviewPeriod, window: Window) -> str:
    """A window as its site's clock reads it: whole days as dates, else with the time."""
    tz = period.tz
    start, end = window.start.astimezone(tz), (window.end - timedelta(minutes=1)).astimezone(tz)
    if period.choice in ("30m", "24h"):
        return f"{_day(start)} {start:%H:%M} \u2013 {_day(end)} {end:%H:%M}"
    return _days(start.date(), end.date())


def _days(first: date, last: date) -> str:
    if first == last:
        return f"{_day(first)} {first.year}"
    if first.year == last.year:
        return f"{_day(first)} \u2013 {_day(last)} {last.year}"
    return f"{_day(first)} {first.year} \u2013 {_day(last)} {last.year}"


def _day(day: date) -> str:
    return f"{day.day} {day:%b}"


def _refresh(
    period: OverviewPeriod, live: LiveFigures | None, share: bool, timer_s: int | None = None
) -> str | None:
    """When the page reads its figures again: after live ticks, or on a timer without them, or
    on `timer_s` for a view slow to read."""
    if not period.running:
        return None
    if live is None or live.degraded:
        return "every 60s" if share else "every 10s"
    return f"every {timer_s}s" if timer_s else AFTER_TICKS


def refresh_timer_s(took_s: float, slow_s: float) -> int | None:
    """A view that took `slow_s` or more to read (a filter the rollups cannot answer reads raw
    events) would be read again on every burst of ticks, and keep the warehouse busy for one
    viewer: it is read again at most every minute, and at most a tenth of the time."""
    if took_s < slow_s:
        return None
    return max(60, math.ceil(10 * took_s))


def provide_overviews(
    stats_queries: NamedDependency[StatsQueries],
    site_admin: NamedDependency[SiteAdmin],
    settings: NamedDependency[Settings],
) -> Overviews:
    return Overviews(stats_queries, site_admin, settings.overview_slow_s)


def request_params(request: Request[Any, Any, State]) -> OverviewParams:
    return OverviewParams.parse(request.query_params.multi_items())


def wants_partial(request: Request[Any, Any, State]) -> bool:
    # A history restore wants the whole page: htmx swaps it for the body.
    return (
        request.headers.get("hx-request") == "true"
        and request.headers.get("hx-history-restore-request") != "true"
    )


async def render_page(
    request: Request[Any, Any, State],
    build: Callable[[OverviewParams], Awaitable[dict[str, Any]]],
    *,
    site: Site,
    base: str,
    tenant: TenantScope | None,
) -> Template:
    """The overview page `build` makes the context of, whole or as its htmx part.

    A bad query string is answered with its reason (400), an analytics store that does not
    answer with a notice (503); an htmx refresh gets 200 for both, since htmx swaps only 2xx
    answers, and the notice keeps refreshing, so the figures come back with the store.
    """
    partial = wants_partial(request)
    template = "_overview.html" if partial else "overview.html"
    here = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    fallback = {"site": site, "base": base, "share": tenant is None, "tenant": tenant, "self_href": here}
    try:
        return Template(template, context=await build(request_params(request)))
    except ParamError as exc:
        return Template(
            template, context={**fallback, "error": str(exc)}, status_code=200 if partial else 400
        )
    except WarehouseUnavailable as exc:
        return Template(
            template,
            context={**fallback, "reason": exc.reason, "unavailable": True, "refresh": "every 10s"},
            status_code=200 if partial else 503,
            headers={"Retry-After": str(max(1, round(exc.retry_after_s)))},
        )


class OverviewPages(Controller):
    path = "/sites/{site_id:str}"
    dependencies = {
        "tenant": Provide(page_scope),
        "overviews": Provide(provide_overviews, sync_to_thread=False),
    }
    include_in_schema = False
    exception_handlers = PAGE_ERRORS

    @get("/")
    async def overview(
        self,
        request: Request[Any, Any, State],
        site_id: FromPath[str],
        tenant: NamedDependency[TenantScope],
        stats: NamedDependency[StatsService],
        overviews: NamedDependency[Overviews],
        live: NamedDependency[LiveSource],
    ) -> Template:
        site = await stats.site(tenant, site_id)

        async def build(params: OverviewParams) -> dict[str, Any]:
            return await overviews.context(tenant, site, params, live=await live.figures(tenant, site.id))

        return await render_page(request, build, site=site, base=f"/sites/{site.id}", tenant=tenant)

    @get("/panels/{panel:str}")
    async def panel(
        self,
        request: Request[Any, Any, State],
        site_id: FromPath[str],
        panel: FromPath[str],
        tenant: NamedDependency[TenantScope],
        stats: NamedDependency[StatsService],
        overviews: NamedDependency[Overviews],
    ) -> Template:
        site = await stats.site(tenant, site_id)

        async def build(params: OverviewParams) -> dict[str, Any]:
            return await overviews.panel_context(tenant, site, params, panel)

        return await render_page(request, build, site=site, base=f"/sites/{site.id}", tenant=tenant)

    @get("/export/{file:str}")
    async def export(
        self,
        request: Request[Any, Any, State],
        site_id: FromPath[str],
        file: FromPath[str],
        tenant: NamedDependency[TenantScope],
        stats: NamedDependency[StatsService],
        overviews: NamedDependency[Overviews],
    ) -> Response[bytes]:
        site = await stats.site(tenant, site_id)
        key = file.removesuffix(".csv")
        if key == file:
            raise NotFoundException("exports are /export/{panel}.csv")
        try:
            return await overviews.export_csv(tenant, site, request_params(request), key)
        except ParamError as exc:
            return Response(f"{exc}\n".encode(), status_code=400, media_type="text/plain; charset=utf-8")
