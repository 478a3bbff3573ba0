"""The live view of a site: current visitors, events per second and the latest events, pushed over SSE.

The page renders its initial state on the server; ui/static/realtime.js then applies each tick
from /sites/{id}/live. The visitor count is also re-read now and then, because visitors leaving
publish no tick.
"""

from __future__ import annotations

import time
from datetime import datetime
from zoneinfo import ZoneInfo

import msgspec
from litestar import Controller, Request, get
from litestar.datastructures import State
from litestar.di import NamedDependency, Provide
from litestar.params import FromPath
from litestar.response import Template

from pulse.dashboard.live_figures import LiveSource
from pulse.dashboard.session import page_scope
from pulse.live.tick import CHART_WINDOW_S, LiveEvent
from pulse.stats.service import StatsService
from pulse.tenancy import TenantScope
from pulse.warehouse.reader import WarehouseUnavailable

# The freshness indicator turns to the warning colour when the newest event is older than this:
# on a site with visitors, a minute without an event means the pipeline is behind.
STALE_AFTER_MS = 60_000


class StreamRow(msgspec.Struct, frozen=True):
    """A listed event with its wall-clock time in the site's time zone, as realtime.js writes it."""

    clock: str
    iso: str
    event: LiveEvent


class RealtimePages(Controller):
    path = "/sites"
    dependencies = {"tenant": Provide(page_scope)}
    include_in_schema = False

    @get("/{site_id:str}/realtime")
    async def realtime(
        self,
        request: Request[None, None, State],
        site_id: FromPath[str],
        tenant: NamedDependency[TenantScope],
        stats: NamedDependency[StatsService],
        live: NamedDependency[LiveSource],
    ) -> Template:
        site = await stats.site(tenant, site_id)
        figures = await live.figures(tenant, site_id, CHART_WINDOW_S)
        if request.headers.get("hx-request") == "true":
            return Template("_realtime_visitors.html", context={"live": figures})
        try:
            recent = await live.recent(tenant, site_id)
            recent_missing = False
        except WarehouseUnavailable:
            # The stream still fills from ticks; only the events before the page opened are missing.
            recent, recent_missing = [], True
        zone = ZoneInfo(site.timezone)
        now_ms = int(time.time() * 1000)
        newest_ms = recent[0].ts_ms if recent else None
        age_ms = None if newest_ms is None else max(0, now_ms - newest_ms)
        return Template(
            "realtime.html",
            context={
                "site": site,
                "tenant": tenant,
                "live": figures,
                "rows": [_row(e, zone) for e in recent],
                "recent_missing": recent_missing,
                "events_in_window": sum(n for _, n in figures.per_second),
                "freshness": None if age_ms is None else _age(age_ms),
                "stale": age_ms is None or age_ms > STALE_AFTER_MS,
                "island": {
                    "stream": f"/sites/{site.id}/live",
                    "timezone": site.timezone,
                    "now_ms": now_ms,
                    "newest_ms": newest_ms,
                    "per_second": figures.per_second,
                    "degraded": figures.degraded,
                    "stale_after_ms": STALE_AFTER_MS,
                },
            },
        )


def _row(event: LiveEvent, zone: ZoneInfo) -> StreamRow:
    at = datetime.fromtimestamp(event.ts_ms / 1000, zone)
    return StreamRow(clock=at.strftime("%H:%M:%S"), iso=at.isoformat(timespec="milliseconds"), event=event)


def _age(ms: int) -> str:
    """The freshness figure ("newest event … ago"), worded as realtime.js words it."""
    seconds = ms / 1000
    if seconds < 60:
        return f"{seconds:.1f} s ago"
    if seconds < 3600:
        return f"{int(seconds // 60)} min ago"
    return f"{int(seconds // 3600)} h ago"
