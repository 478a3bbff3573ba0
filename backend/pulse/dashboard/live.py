"""Live push channels: Server-Sent Events fed by the process's TickHub, for the live view and API clients.

The hub hands every client of a site the same frame bytes; the response writes them as they
are (Litestar's ServerSentEvent would decode, split and encode each message again per client).
"""

from __future__ import annotations

from collections.abc import AsyncIterator

from litestar import get
from litestar.di import NamedDependency, Provide
from litestar.params import FromPath
from litestar.response import Stream

from pulse.dashboard.session import api_scope, page_scope
from pulse.live.hub import KEEPALIVE_S, READY, TickHub
from pulse.stats.service import StatsService
from pulse.tenancy import TenantScope

SSE_HEADERS = {
    "Cache-Control": "no-cache",
    # nginx and its kin would otherwise hold the frames back to fill a buffer.
    "X-Accel-Buffering": "no",
}


@get(
    "/sites/{site_id:str}/live",
    dependencies={"tenant": Provide(page_scope)},
    include_in_schema=False,
    # A GET that changes nothing and renders no form needs no CSRF cookie; unwrapped, each
    # frame skips one middleware layer on its way out.
    exclude_from_csrf=True,
)
async def live_stream(
    site_id: FromPath[str],
    tenant: NamedDependency[TenantScope],
    stats: NamedDependency[StatsService],
    hub: NamedDependency[TickHub],
) -> Stream:
    await stats.site(tenant, site_id)
    return event_stream(hub, tenant, site_id)


@get(
    "/api/v1/sites/{site_id:str}/stream",
    dependencies={"tenant": Provide(api_scope)},
    summary="The site's live ticks as Server-Sent Events (stats:read)",
    description="`event: ready` once subscribed (no later tick can be missed), then an `event: tick` "
    "each time the site's events are counted, and a comment line every "
    f"{KEEPALIVE_S:.0f} s. A tick's data is one JSON object: `site_id`; `ts_ms` (when it was "
    "published); `pageviews` and `events` (how many the batch counted; engagement pings are not "
    "events); `newest_ms` (the newest event's time); `visitors` (visitors seen in the last five "
    "minutes); `seconds` (`[epoch second, events]` pairs the batch added, last five minutes only); "
    "`recent` (the batch's newest events, newest first, at most 20, each with `ts_ms`, `name`, "
    "`path`, `source`, `country`, `device`, `browser`; no engagement pings). Fields may be added. "
    "A client that falls behind is disconnected, and the stream ends when the server stops; "
    "reconnect then.",
    tags=["stats"],
)
async def api_live_stream(
    site_id: FromPath[str],
    tenant: NamedDependency[TenantScope],
    stats: NamedDependency[StatsService],
    hub: NamedDependency[TickHub],
) -> Stream:
    await stats.site(tenant, site_id)
    return event_stream(hub, tenant, site_id)


def event_stream(hub: TickHub, tenant: TenantScope, site_id: str) -> Stream:
    """The site's ticks as SSE; the share view (pulse.dashboard.share_view) serves it too."""
    return Stream(_frames(hub, tenant, site_id), media_type="text/event-stream", headers=SSE_HEADERS)


async def _frames(hub: TickHub, tenant: TenantScope, site_id: str) -> AsyncIterator[bytes]:
    async with hub.subscribe(tenant, site_id) as queue:
        # Sent once subscribed, so a client knows no tick from now on can be missed.
        yield READY
        while (frame := await queue.get()) is not None:
            yield frame
