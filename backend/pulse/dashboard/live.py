"""Live push channels: Server-Sent Events fed by the process's TickHub, for the live view and API clients."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

from litestar import get
from litestar.di import NamedDependency, Provide
from litestar.params import FromPath
from litestar.response import ServerSentEvent, ServerSentEventMessage

from pulse.dashboard.session import api_scope, page_scope
from pulse.live.hub import TickHub
from pulse.stats.service import StatsService
from pulse.telemetry.metrics import Metrics
from pulse.tenancy import TenantScope

KEEPALIVE_S = 15.0


@get(
    "/sites/{site_id:str}/live",
    dependencies={"tenant": Provide(page_scope)},
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


@get(
    "/api/v1/sites/{site_id:str}/stream",
    dependencies={"tenant": Provide(api_scope)},
    summary="The site's live ticks as Server-Sent Events (stats:read)",
    description="`event: ready` once subscribed (no later tick can be missed), then an `event: tick` "
    "whose data is a JSON object of the site's figures each time its events are counted, and a "
    f"comment line after {KEEPALIVE_S:.0f} s without one. The stream ends when the server stops; "
    "reconnect then.",
    tags=["stats"],
)
async def api_live_stream(
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
