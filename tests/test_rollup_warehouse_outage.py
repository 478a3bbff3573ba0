"""ClickHouse refusing inserts: the worker holds the batch and its offsets, retries, loses nothing."""

from __future__ import annotations

import asyncio

import httpx
from prometheus_client.parser import text_string_to_metric_families

from pulse.warehouse.client import Warehouse
from stack import Stack
from visitor import BROWSER


async def _insert_errors(client: httpx.AsyncClient, rollup: str) -> float:
    text = (await client.get(f"{rollup}/metrics")).text
    return sum(
        sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == "rollup_insert_errors_total"
    )


async def test_events_sent_while_the_events_table_is_gone_are_counted_once_it_is_back(stack: Stack) -> None:
    tenant = await stack.tenant("Outage")
    rollup = f"http://127.0.0.1:{stack.settings.rollup_port}"
    warehouse = Warehouse(stack.settings.effective_clickhouse_url, stack.settings.clickhouse_database)
    async with httpx.AsyncClient(headers=BROWSER) as client:
        errors_before = await _insert_errors(client, rollup)
        # The real engine refusing writes: every insert into `events` fails until it is attached.
        await warehouse.run(warehouse.client.command, "DETACH TABLE events")
        try:
            for i in range(20):
                body = f'{{"s": "{tenant.site.id}", "u": "https://outage.example/{i}"}}'
                response = await client.post(f"{stack.collector}/api/event", content=body)
                assert response.status_code == 202
            for _ in range(100):
                if await _insert_errors(client, rollup) > errors_before:
                    break
                await asyncio.sleep(0.1)
            retried = await _insert_errors(client, rollup) - errors_before
        finally:
            await warehouse.run(warehouse.client.command, "ATTACH TABLE events")
    assert retried >= 1
    assert await stack.counts(tenant, {"events": 20, "pageviews": 20}) == {"events": 20, "pageviews": 20}
