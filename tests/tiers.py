"""The two isolation tiers a stack tenant can be on, so a test can run over both.

    @on_both_tiers
    async def test_x(stack: Stack, tier: Tier) -> None:
        tenant = await stack.tenant("X")
        await put_on(stack, tier, tenant)

A tenant goes to the dedicated tier the way an operator moves it, `pulse tenant isolate`, run as
its function in this process: chDB lets one process open a data path, and the stack's is open here.
"""

from __future__ import annotations

import asyncio
from typing import Literal, get_args

import pytest

from pulse.tenant_isolation import Isolation, isolate_tenant
from pulse.warehouse.client import Warehouse
from stack import Stack, Tenant

Tier = Literal["shared", "dedicated"]
TIERS: tuple[Tier, ...] = get_args(Tier)

on_both_tiers = pytest.mark.parametrize("tier", TIERS)


async def isolate(stack: Stack, tenant: Tenant, database: str | None = None) -> Isolation:
    """Moves the tenant to a ClickHouse database of its own; every worker writes its events there after."""
    warehouse = Warehouse(stack.settings.effective_clickhouse_url, stack.settings.clickhouse_database)
    try:
        moved = await isolate_tenant(stack.settings, warehouse, stack.accounts, tenant.tenant_id, database)
    finally:
        warehouse.close()
    assert moved.left_behind == 0, moved
    return moved


async def put_on(stack: Stack, tier: Tier, *tenants: Tenant) -> None:
    """Each tenant on a database of its own for the dedicated tier; moved together, so the wait for
    every process to route them is waited once."""
    if tier == "dedicated":
        await asyncio.gather(*(isolate(stack, tenant) for tenant in tenants))
