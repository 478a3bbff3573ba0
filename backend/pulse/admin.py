"""Operator commands: `pulse site ...` on a site by its public key, `pulse tenant ...` by tenant id."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager

from pulse.oltp.accounts import Accounts, Site, Tenant
from pulse.oltp.db import create_engine
from pulse.settings import Settings
from pulse.tenant_isolation import Isolation, isolate_tenant
from pulse.warehouse.client import Warehouse


async def set_hosts(settings: Settings, site_id: str, hosts: Sequence[str]) -> Site:
    async with _accounts(settings) as accounts:
        site = await _find(accounts, site_id)
        return await accounts.set_allowed_hosts(site.tenant_id, site.id, list(hosts))


async def set_disabled(settings: Settings, site_id: str, disabled: bool) -> Site:
    async with _accounts(settings) as accounts:
        site = await _find(accounts, site_id)
        return await accounts.set_disabled(site.tenant_id, site.id, disabled)


async def set_retention(settings: Settings, tenant_id: str, days: int) -> Tenant:
    async with _accounts(settings) as accounts:
        return await accounts.set_retention(tenant_id, days)


async def isolate(
    settings: Settings, tenant_id: str, database: str | None, progress: Callable[[str], None]
) -> Isolation:
    """With embedded ClickHouse (chDB), only while no other process has its data path open."""
    warehouse = Warehouse(
        settings.effective_clickhouse_url, settings.clickhouse_database, settings.clickhouse_cluster
    )
    try:
        async with _accounts(settings) as accounts:
            return await isolate_tenant(settings, warehouse, accounts, tenant_id, database, progress)
    finally:
        warehouse.close()


async def _find(accounts: Accounts, site_id: str) -> Site:
    site = await accounts.find_site(site_id)
    if site is None:
        raise ValueError(f"no site with key {site_id!r}")
    return site


@asynccontextmanager
async def _accounts(settings: Settings) -> AsyncIterator[Accounts]:
    engine = create_engine(settings.effective_database_url)
    try:
        yield Accounts(engine)
    finally:
        await engine.dispose()
