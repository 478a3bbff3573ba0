"""A worker that starts rebuilds the live window from ClickHouse, so Redis converges after a crash."""

from __future__ import annotations

import httpx
from redis.asyncio import Redis

from pulse.live.keys import active_key, seconds_key
from pulse.live.reader import LiveReader
from pulse.live.writer import LiveWriter
from pulse.rollup.live_restore import restore_live_window
from pulse.tenancy import TenantScope
from pulse.warehouse.client import Warehouse
from stack import Stack
from visitor import BROWSER


async def test_lost_live_state_is_rebuilt_exactly_from_clickhouse(stack: Stack) -> None:
    tenant = await stack.tenant("Restore")
    site = tenant.site.id
    async with httpx.AsyncClient(base_url=stack.collector, headers=BROWSER) as client:
        for i in range(12):
            body = f'{{"s": "{site}", "u": "https://restore.example/{i}"}}'
            headers = {"x-forwarded-for": f"198.51.100.{i % 3}"}
            assert (await client.post("/api/event", content=body, headers=headers)).status_code == 202
    assert await stack.counts(tenant, {"events": 12}) == {"events": 12}

    redis = Redis.from_url(stack.settings.redis_url)
    live = LiveReader(redis)
    scope = TenantScope.of_user(tenant.tenant_id, "test", "viewer")
    before = (
        await live.current_visitors(scope, site),
        sum(n for _, n in await live.per_second(scope, site, 600)),
    )
    assert before == (3, 12)
    # What a worker that died between its ClickHouse insert and its Redis update leaves behind.
    second_keys = [
        k async for k in redis.scan_iter(seconds_key(tenant.tenant_id, site, 0).replace(":0", ":*"))
    ]
    await redis.delete(active_key(tenant.tenant_id, site), *second_keys)
    assert await live.current_visitors(scope, site) == 0

    warehouse = Warehouse(stack.settings.effective_clickhouse_url, stack.settings.clickhouse_database)
    await restore_live_window(warehouse, LiveWriter(redis))
    await restore_live_window(warehouse, LiveWriter(redis))
    after = (
        await live.current_visitors(scope, site),
        sum(n for _, n in await live.per_second(scope, site, 600)),
    )
    await redis.aclose()
    assert after == before
