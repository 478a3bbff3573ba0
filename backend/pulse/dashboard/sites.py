"""Tenant-scoped site lookups for the read path, over the OLTP store."""

from __future__ import annotations

from pulse.oltp.accounts import Accounts, Site
from pulse.tenancy import TenantScope


class TenantSites:
    def __init__(self, accounts: Accounts) -> None:
        self._accounts = accounts

    async def get(self, scope: TenantScope, site_id: str) -> Site | None:
        return await self._accounts.get_site(scope.tenant_id, site_id)

    async def list(self, scope: TenantScope) -> list[Site]:
        return await self._accounts.list_sites(scope.tenant_id)
