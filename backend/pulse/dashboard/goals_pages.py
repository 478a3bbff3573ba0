"""The goals page of a site: its goals with their conversions over the last 30 days, and the forms
that add and delete them (sites:write; viewers see the list only)."""

from __future__ import annotations

from typing import Annotated

import msgspec
from litestar import Controller, get, post
from litestar.di import NamedDependency, Provide
from litestar.enums import RequestEncodingType
from litestar.params import Body, FromPath
from litestar.response import Redirect, Template

from pulse.dashboard.page_errors import PAGE_ERRORS
from pulse.dashboard.session import page_scope
from pulse.dashboard.site_admin import SiteAdmin
from pulse.oltp.accounts import Site
from pulse.oltp.goals import MAX_GOALS_PER_SITE, Goal, InvalidGoal
from pulse.stats.query import StatsQuery
from pulse.stats.query_service import StatsQueries
from pulse.stats.ranges import PeriodName
from pulse.stats.service import StatsService
from pulse.tenancy import TenantScope
from pulse.warehouse.reader import WarehouseUnavailable

PERIOD: PeriodName = "30d"
# Far above any valid field (pulse.oltp.goals checks the real limits and names them).
_FIELD = Annotated[str, msgspec.Meta(max_length=8192)]


class GoalForm(msgspec.Struct, frozen=True):
    name: _FIELD = ""
    kind: _FIELD = "page"
    pattern: _FIELD = ""


class Conversions(msgspec.Struct, frozen=True):
    # Visitors who completed the goal in the period.
    visitors: int
    # Those visitors as a share of all the site's visitors in the period (0 to 1).
    rate: float


class GoalsPages(Controller):
    path = "/sites/{site_id:str}/goals"
    dependencies = {"tenant": Provide(page_scope)}
    exception_handlers = PAGE_ERRORS
    include_in_schema = False

    @get("/")
    async def goals(
        self,
        site_id: FromPath[str],
        tenant: NamedDependency[TenantScope],
        stats: NamedDependency[StatsService],
        site_admin: NamedDependency[SiteAdmin],
        stats_queries: NamedDependency[StatsQueries],
    ) -> Template:
        site = await stats.site(tenant, site_id)
        return await _page(tenant, site, site_admin, stats_queries)

    @post("/")
    async def create(
        self,
        site_id: FromPath[str],
        data: Annotated[GoalForm, Body(media_type=RequestEncodingType.URL_ENCODED)],
        tenant: NamedDependency[TenantScope],
        stats: NamedDependency[StatsService],
        site_admin: NamedDependency[SiteAdmin],
        stats_queries: NamedDependency[StatsQueries],
    ) -> Template | Redirect:
        tenant.require("sites:write")
        site = await stats.site(tenant, site_id)
        try:
            await site_admin.create_goal(tenant, site.id, data.name, data.kind, data.pattern)
        except InvalidGoal as exc:
            error = f"{_FIELD_NAMES.get(exc.field, exc.field)}: {exc.reason}"
            return await _page(tenant, site, site_admin, stats_queries, form=data, error=error, status=400)
        return Redirect(f"/sites/{site.id}/goals", status_code=303)

    @post("/{goal_id:str}/delete")
    async def delete(
        self,
        site_id: FromPath[str],
        goal_id: FromPath[str],
        tenant: NamedDependency[TenantScope],
        site_admin: NamedDependency[SiteAdmin],
    ) -> Redirect:
        await site_admin.delete_goal(tenant, site_id, goal_id)
        return Redirect(f"/sites/{site_id}/goals", status_code=303)


_FIELD_NAMES = {"name": "Name", "kind": "Kind", "pattern": "Path or event name", "site": "Goals"}


async def _page(
    tenant: TenantScope,
    site: Site,
    site_admin: SiteAdmin,
    stats_queries: StatsQueries,
    *,
    form: GoalForm | None = None,
    error: str | None = None,
    status: int = 200,
) -> Template:
    goals = await site_admin.goals(tenant, site.id)
    try:
        figures: dict[str, Conversions] | None = await conversions(stats_queries, tenant, site, goals)
    except WarehouseUnavailable:
        # The goals can still be listed and managed while the figures cannot be read.
        figures = None
    return Template(
        "goals.html",
        context={
            "tenant": tenant,
            "site": site,
            "goals": goals,
            "figures": figures,
            "zero": Conversions(visitors=0, rate=0.0),
            "can_edit": "sites:write" in tenant.permissions,
            "form": form or GoalForm(),
            "error": error,
            "period": PERIOD,
        },
        status_code=status,
    )


async def conversions(
    stats_queries: StatsQueries, tenant: TenantScope, site: Site, goals: list[Goal]
) -> dict[str, Conversions]:
    """Each goal's conversions over the period, by goal name; goals nobody completed are absent."""
    if not goals:
        return {}
    query = StatsQuery(
        metrics=["visitors", "conversion_rate"],
        dimensions=["goal"],
        date_range=PERIOD,
        limit=MAX_GOALS_PER_SITE,
    )
    result = await stats_queries.run(tenant, site, query)
    return {
        row.dimensions[0]: Conversions(visitors=int(row.metrics[0]), rate=float(row.metrics[1]))
        for row in result.results
    }
