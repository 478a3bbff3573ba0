"""Read path of the stats query: check → the site's goals if it needs them → compile → run → shape."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Protocol

from pulse.oltp.accounts import Site
from pulse.oltp.goals import Goal
from pulse.stats.compile import compile_query
from pulse.stats.conversions import uses_goals
from pulse.stats.query import StatsQuery, check
from pulse.stats.query_result import QueryResult, shape
from pulse.stats.service import SiteNotFound
from pulse.tenancy import TenantScope
from pulse.warehouse.reader import ScopedReader


class SiteGoals(Protocol):
    async def list(self, tenant_id: str, site_id: str) -> list[Goal]: ...


class StatsQueries:
    def __init__(self, reader: ScopedReader, goals: SiteGoals) -> None:
        self._reader = reader
        self._goals = goals

    async def run(self, scope: TenantScope, site: Site, query: StatsQuery) -> QueryResult:
        """`site` comes from StatsService.site, which checked it is the scope's tenant's."""
        if site.tenant_id != scope.tenant_id:
            raise SiteNotFound(site.id)
        valid = check(query, datetime.now(UTC), site.timezone)
        goals = await self._goals.list(scope.tenant_id, site.id) if uses_goals(valid) else []
        compiled = compile_query(valid, site.id, goals)
        rows = await self._reader.select(scope, compiled.query, compiled.params)
        return shape(valid, rows)
