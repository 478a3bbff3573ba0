"""Managing a tenant's sites and goals: every call takes the asker's scope and checks its permission.

Reads need stats:read and writes sites:write, asked here rather than in each handler so that no
route can forget. Another tenant's site or goal is as unknown as a missing one (404, no data).
"""

from __future__ import annotations

from collections.abc import Sequence

from pulse.oltp.accounts import Accounts, Site
from pulse.oltp.goals import Goal, Goals, UnknownSite
from pulse.stats.service import SiteNotFound
from pulse.tenancy import TenantScope


class GoalNotFound(Exception):
    """Unknown goal, another tenant's, or one of another site of the tenant."""


class SiteAdmin:
    def __init__(self, accounts: Accounts, goals: Goals) -> None:
        self._accounts = accounts
        self._goals = goals

    async def sites(self, scope: TenantScope) -> list[Site]:
        scope.require("stats:read")
        return await self._accounts.list_sites(scope.tenant_id)

    async def site(self, scope: TenantScope, site_id: str) -> Site:
        scope.require("stats:read")
        return await self._owned(scope, site_id)

    async def create_site(
        self,
        scope: TenantScope,
        name: str,
        domain: str,
        allowed_hosts: Sequence[str],
        timezone: str,
        visitor_mode: str = "cookieless",
    ) -> Site:
        scope.require("sites:write")
        return await self._accounts.create_site(
            scope.tenant_id,
            name,
            domain,
            allowed_hosts=allowed_hosts,
            timezone=timezone,
            visitor_mode=visitor_mode,
        )

    async def update_site(
        self,
        scope: TenantScope,
        site_id: str,
        *,
        name: str | None = None,
        domain: str | None = None,
        allowed_hosts: Sequence[str] | None = None,
        timezone: str | None = None,
        visitor_mode: str | None = None,
        disabled: bool | None = None,
    ) -> Site:
        """None leaves a setting as it is."""
        scope.require("sites:write")
        await self._owned(scope, site_id)
        return await self._accounts.update_site(
            scope.tenant_id,
            site_id,
            name=name,
            domain=domain,
            allowed_hosts=allowed_hosts,
            timezone=timezone,
            visitor_mode=visitor_mode,
            disabled=disabled,
        )

    async def goals(self, scope: TenantScope, site_id: str) -> list[Goal]:
        scope.require("stats:read")
        await self._owned(scope, site_id)
        return await self._goals.list(scope.tenant_id, site_id)

    async def goal(self, scope: TenantScope, site_id: str, goal_id: str) -> Goal:
        scope.require("stats:read")
        return await self._goal(scope, site_id, goal_id)

    async def create_goal(self, scope: TenantScope, site_id: str, name: str, kind: str, pattern: str) -> Goal:
        scope.require("sites:write")
        try:
            return await self._goals.create(scope.tenant_id, site_id, name, kind, pattern)
        except UnknownSite:
            raise SiteNotFound(site_id) from None

    async def update_goal(
        self,
        scope: TenantScope,
        site_id: str,
        goal_id: str,
        *,
        name: str | None = None,
        kind: str | None = None,
        pattern: str | None = None,
    ) -> Goal:
        """None leaves a field as it is."""
        scope.require("sites:write")
        await self._goal(scope, site_id, goal_id)
        goal = await self._goals.update(scope.tenant_id, goal_id, name=name, kind=kind, pattern=pattern)
        if goal is None:
            raise GoalNotFound(goal_id)
        return goal

    async def delete_goal(self, scope: TenantScope, site_id: str, goal_id: str) -> None:
        scope.require("sites:write")
        await self._goal(scope, site_id, goal_id)
        if not await self._goals.delete(scope.tenant_id, goal_id):
            raise GoalNotFound(goal_id)

    async def _owned(self, scope: TenantScope, site_id: str) -> Site:
        site = await self._accounts.get_site(scope.tenant_id, site_id)
        if site is None:
            raise SiteNotFound(site_id)
        return site

    async def _goal(self, scope: TenantScope, site_id: str, goal_id: str) -> Goal:
        await self._owned(scope, site_id)
        goal = await self._goals.get(scope.tenant_id, goal_id)
        if goal is None or goal.site_id != site_id:
            raise GoalNotFound(goal_id)
        return goal
