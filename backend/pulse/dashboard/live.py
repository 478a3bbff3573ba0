"""The live view's push channel: Server-Sent Events fed by the process's TickHub."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

from litestar import get
from litestar.di import NamedDependency, Provide
from litestar.params import FromPath
from litestar.response import ServerSentEvent, ServerSentEventMessage

from pulse.dashboard.session import page_scope
from pulse.live.hub import TickHub
from pulse.stats.service import StatsService
from pulse.telemetry.metrics import Metrics
from pulse.tenancy import TenantScope

KEEPALIVE_S = 15.0


@get(
    "/sites/{site_id:str}/live",
    dependencies={"tenant": Provide(page_scope, sync_to_thread=False)},
    include_in_schema=False,
)
async def live_stream(
    site_id: FromPath[str],
    tenant: NamedDependency[TenantScope],
    stats: NamedDependency[StatsService],
    hub: NamedDependency[TickHub],
    metrics: NamedDependency[Metrics],
) -> ServerSentEvent:
    await stats.site(tenant, site_id)
    return ServerSentEvent(_ticks(hub, tenant, site_id, metrics))


async def _ticks(
    hub: NamedDependency[TickHub],
    tenant: NamedDependency[TenantScope],
    site_id: FromPath[str],
    metrics: NamedDependency[Metrics],
) -> AsyncIterator[ServerSentEventMessage]:
    async with hub.subscribe(tenant, site_id) as queue:
        metrics.sse_clients.add(1)
        try:
            # Sent once subscribed, so a client knows no tick from now on can be missed.
            yield ServerSentEventMessage(event="ready", data="{}")
            while True:
                try:
                    payload = await asyncio.wait_for(queue.get(), KEEPALIVE_S)
                except TimeoutError:
                    yield ServerSentEventMessage(comment="keepalive")
                    continue
                if payload is None:
                    return
                metrics.sse_ticks.add(1)
                yield ServerSentEventMessage(event="tick", data=payload.decode())
        finally:
            metrics.sse_clients.add(-1)
