"""Adapter from the OLTP accounts store to the collector's site lookup."""

from __future__ import annotations

from pulse.collector.sites import SiteRecord
from pulse.oltp.accounts import Accounts


class AccountsSiteSource:
    def __init__(self, accounts: Accounts) -> None:
        self._accounts = accounts

    async def lookup(self, site_id: str) -> SiteRecord | None:
        site = await self._accounts.find_site(site_id)
        if site is None:
            return None
        return SiteRecord(
            site_id=site.id,
            tenant_id=site.tenant_id,
            disabled=site.disabled,
            allowed_hosts=site.allowed_hosts,
            visitor_mode=site.visitor_mode,
        )
