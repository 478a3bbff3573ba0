"""Read path: resolve the period → check the site is the tenant's → query → shape.

The ownership check happens once, in `site()`: the figures take the `Site` it returns,
so a page that shows several figures looks the site up once, and no figure can be asked
for a site that was not checked.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Protocol

import msgspec

from pulse.oltp.accounts import Site
from pulse.stats.periods import Period
from pulse.stats.queries import AGGREGATE, ANY_EVENT, SESSIONS, TIMESERIES
from pulse.tenancy import TenantScope
from pulse.warehouse.reader import ScopedReader


class SiteNotFound(Exception):
    """Unknown site, or a site of another tenant: the two are indistinguishable on purpose."""


class TenantSiteLookup(Protocol):
    async def get(self, scope: TenantScope, site_id: str) -> Site | None: ...


class Aggregate(msgspec.Struct, frozen=True):
    site_id: str
    period: str
    start: datetime
    end: datetime
    visitors: int
    pageviews: int
    events: int
    sessions: int
    # Sessions with at most one pageview, as a share of all sessions (0 when there are none).
    bounce_rate: float
    # Mean time from a session's first to its last event, in seconds.
    visit_duration_s: float


class Point(msgspec.Struct, frozen=True):
    t: datetime
    visitors: int
    pageviews: int
    events: int


class Timeseries(msgspec.Struct, frozen=True):
    site_id: str
    period: str
    interval: str
    points: list[Point]


class StatsService:
    def __init__(self, reader: ScopedReader, sites: TenantSiteLookup) -> None:
        self._reader = reader
        self._sites = sites

    async def site(self, scope: TenantScope, site_id: str) -> Site:
        # Every figure starts here, so no read of figures can skip the permission.
        scope.require("stats:read")
        site = await self._sites.get(scope, site_id)
        if site is None:
            raise SiteNotFound(site_id)
        return site

    async def has_events(self, scope: TenantScope, site: Site) -> bool:
        """Whether any event of the site was ever counted: the install page's first-event check."""
        rows = await self._reader.select(scope, ANY_EVENT, {"site_id": _owned(scope, site)})
        return bool(rows)

    async def aggregate(self, scope: TenantScope, site: Site, period: Period) -> Aggregate:
        site_id = _owned(scope, site)
        rows = await self._reader.select(scope, AGGREGATE[period.grain], _params(site_id, period))
        pageviews, events, visitors = rows[0] if rows else (0, 0, 0)
        visits = await self._reader.select(scope, SESSIONS, _params(site_id, period))
        sessions, bounces, duration = visits[0] if visits else (0, 0, 0.0)
        return Aggregate(
            site_id=site_id,
            period=period.name,
            start=period.start,
            end=period.end,
            visitors=int(visitors or 0),
            pageviews=int(pageviews or 0),
            events=int(events or 0),
            sessions=int(sessions),
            bounce_rate=round(bounces / sessions, 4) if sessions else 0.0,
            visit_duration_s=round(float(duration), 1) if sessions else 0.0,
        )

    async def timeseries(self, scope: TenantScope, site: Site, period: Period) -> Timeseries:
        site_id = _owned(scope, site)
        rows = await self._reader.select(scope, TIMESERIES[period.grain], _params(site_id, period))
        found = {_utc(row[0]): row for row in rows}
        points = []
        for bucket in period.buckets():
            row = found.get(bucket)
            pageviews, events, visitors = (int(row[1]), int(row[2]), int(row[3])) if row else (0, 0, 0)
            points.append(Point(t=bucket, visitors=visitors, pageviews=pageviews, events=events))
        return Timeseries(site_id=site_id, period=period.name, interval=period.grain, points=points)


def _owned(scope: TenantScope, site: Site) -> str:
    if site.tenant_id != scope.tenant_id:
        raise SiteNotFound(site.id)
    return site.id


def _params(site_id: str, period: Period) -> dict[str, object]:
    return {"site_id": site_id, "start": period.start, "end": period.end}


def _utc(value: datetime) -> datetime:
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
