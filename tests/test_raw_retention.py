"""Raw events are kept for their tenant's plan: stamped by the worker, deleted by ClickHouse's TTL."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import httpx

from pulse.rollup.retention import TenantRetention
from pulse.warehouse.client import Warehouse
from stack import Stack
from visitor import BROWSER


async def test_rows_carry_their_tenants_retention_and_expire_after_it(stack: Stack) -> None:
    # Created on its plan: a retention set afterwards reaches the worker within its minute's refresh.
    short = await stack.tenant("ShortPlan", retention_days=1)
    long = await stack.tenant("LongPlan")
    async with httpx.AsyncClient(base_url=stack.collector, headers=BROWSER) as client:
        for tenant in (short, long):
            body = f'{{"s": "{tenant.site.id}", "u": "https://plan.example/"}}'
            assert (await client.post("/api/event", content=body)).status_code == 202
    for tenant in (short, long):
        assert await stack.counts(tenant, {"events": 1}) == {"events": 1}

    warehouse = Warehouse(stack.settings.effective_clickhouse_url, stack.settings.clickhouse_database)
    tenants = {"short": short.tenant_id, "long": long.tenant_id}

    def retention() -> dict[str, int]:
        sql = "SELECT tenant_id, any(retention_days) FROM events WHERE tenant_id IN ({short:String}, {long:String}) GROUP BY tenant_id"
        rows: Any = warehouse.client.query(sql, parameters=tenants).result_rows
        return {str(t): int(d) for t, d in rows}

    assert await warehouse.run(retention) == {short.tenant_id: 1, long.tenant_id: 400}

    # Three days old: past the short plan, within the long one. TTL is applied when parts merge.
    old = datetime.now(UTC) - timedelta(days=3)

    def age_and_merge() -> dict[str, int]:
        for tenant_id, site, days in (
            (short.tenant_id, short.site.id, 1),
            (long.tenant_id, long.site.id, 400),
        ):
            warehouse.client.insert(
                "events",
                [[tenant_id, site, old, b"\x07" * 16, "pageview", "plan.example", "/old", days]],
                column_names=[
                    "tenant_id",
                    "site_id",
                    "ts",
                    "event_id",
                    "name",
                    "hostname",
                    "pathname",
                    "retention_days",
                ],
            )
        warehouse.client.command("OPTIMIZE TABLE events FINAL")
        sql = (
            "SELECT tenant_id, count() FROM events WHERE tenant_id IN ({short:String}, {long:String})"
            " AND pathname = '/old' GROUP BY tenant_id"
        )
        rows: Any = warehouse.client.query(sql, parameters=tenants).result_rows
        return {str(t): int(n) for t, n in rows}

    assert await warehouse.run(age_and_merge) == {long.tenant_id: 1}


async def test_a_new_tenant_is_looked_up_soon_and_unknown_ones_get_the_default() -> None:
    reads: list[dict[str, int]] = [{"a": 30}, {"a": 30, "b": 7}]
    now = [0.0]

    async def source() -> dict[str, int]:
        return reads.pop(0)

    retention = TenantRetention(source, refresh_s=60, clock=lambda: now[0])
    assert await retention.current({"a"}) == {"a": 30}
    now[0] = 6.0
    days = await retention.current({"b"})
    assert TenantRetention.of(days, "b") == 7
    assert TenantRetention.of(days, "nobody") == 400


async def test_each_new_tenant_is_looked_up_on_its_first_rows_even_right_after_another() -> None:
    reads: list[dict[str, int]] = [{"a": 30}, {"a": 30, "b": 7}, *[{"a": 30, "b": 7, "c": 1}] * 2]
    looked_up = []
    now = [0.0]

    async def source() -> dict[str, int]:
        looked_up.append(now[0])
        return reads.pop(0)

    retention = TenantRetention(source, refresh_s=60, clock=lambda: now[0])
    await retention.current({"a"})
    now[0] = 0.5
    assert TenantRetention.of(await retention.current({"b"}), "b") == 7
    now[0] = 1.0
    assert TenantRetention.of(await retention.current({"c", "a"}), "c") == 1
    # A tenant no read finds is not looked up on every batch.
    now[0] = 1.5
    assert TenantRetention.of(await retention.current({"gone"}), "gone") == 400
    now[0] = 2.0
    await retention.current({"gone"})
    assert looked_up == [0.0, 0.5, 1.0, 1.5]
