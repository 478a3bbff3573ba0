"""A site's generated history inserted into the stack's chDB, as bench/seed_events.py does it."""

from __future__ import annotations

from datetime import UTC, datetime

from pulse.loadgen.history import History, insert_sql
from pulse.warehouse.client import Warehouse
from stack import Stack, Tenant


async def insert_history(
    stack: Stack, name: str, events: int, days: int
) -> tuple[Tenant, Warehouse, datetime]:
    """A new tenant whose site has `events` events over the `days` days up to now (returned)."""
    tenant = await stack.tenant(name)
    warehouse = Warehouse(stack.settings.effective_clickhouse_url, stack.settings.clickhouse_database)
    end = datetime.now(UTC)
    history = History(
        tenant_id=tenant.tenant_id,
        site_id=tenant.site.id,
        hostname=f"{tenant.site.id}.example",
        events=events,
        end=end,
        days=days,
    )
    sql, params = insert_sql(history)
    await warehouse.run(warehouse.client.command, sql, parameters=params)
    return tenant, warehouse, end
