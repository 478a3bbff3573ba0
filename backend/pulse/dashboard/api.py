"""Stats API (JSON): aggregate and timeseries per site, all tenant scoped (tokens: api_keys.py)."""

from __future__ import annotations

from typing import Annotated

import msgspec
from litestar import Controller, get
from litestar.di import NamedDependency, Provide
from litestar.params import FromPath, FromQuery, Parameter

from pulse.dashboard.live_figures import LiveSource
from pulse.dashboard.session import api_scope
from pulse.stats.periods import PeriodName, resolve_period
from pulse.stats.service import Aggregate, StatsService, Timeseries
from pulse.tenancy import TenantScope

PeriodParam = Annotated[PeriodName, Parameter(description="30m, today, 24h, 7d or 30d")]


class Realtime(msgspec.Struct, frozen=True):
    site_id: FromPath[str]
    visitors: int
    # "redis", or "clickhouse" while the live layer is down: the same figure, read from raw events.
    source: str


class StatsController(Controller):
    path = "/api/v1/sites/{site_id:str}"
    dependencies = {"tenant": Provide(api_scope)}

    @get("/aggregate", summary="Visitors, pageviews and events over a period")
    async def aggregate(
        self,
        site_id: FromPath[str],
        tenant: NamedDependency[TenantScope],
        stats: NamedDependency[StatsService],
        period: FromQuery[PeriodParam] = "24h",
    ) -> Aggregate:
        return await stats.aggregate(tenant, await stats.site(tenant, site_id), resolve_period(period))

    @get("/timeseries", summary="The same figures per minute, hour or day bucket")
    async def timeseries(
        self,
        site_id: FromPath[str],
        tenant: NamedDependency[TenantScope],
        stats: NamedDependency[StatsService],
        period: FromQuery[PeriodParam] = "24h",
    ) -> Timeseries:
        return await stats.timeseries(tenant, await stats.site(tenant, site_id), resolve_period(period))

    @get("/realtime", summary="Visitors active in the last five minutes")
    async def realtime(
        self,
        site_id: FromPath[str],
        tenant: NamedDependency[TenantScope],
        stats: NamedDependency[StatsService],
        live: NamedDependency[LiveSource],
    ) -> Realtime:
        await stats.site(tenant, site_id)
        figures = await live.figures(tenant, site_id)
        return Realtime(site_id=site_id, visitors=figures.current_visitors, source=figures.source)
