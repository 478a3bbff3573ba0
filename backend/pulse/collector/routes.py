"""HTTP edge of the collector: a few lines per handler, the logic lives in Ingest."""

from __future__ import annotations

from litestar import Controller, Request, Response, get, post
from litestar.datastructures import State
from litestar.di import NamedDependency
from litestar.handlers import HTTPRouteHandler

from pulse.collector.ingest import Ingest, RequestContext
from pulse.collector.privacy import client_ip
from pulse.collector.tracker import TrackerScript
from pulse.settings import Settings

ACCEPTED = 202


def _context(request: Request[None, None, State], settings: NamedDependency[Settings]) -> RequestContext:
    peer = request.client.host if request.client else None
    ip = client_ip(peer, request.headers.get("x-forwarded-for"), settings.trusted_proxies)
    return RequestContext(ip=ip, user_agent=request.headers.get("user-agent", ""))


class EventController(Controller):
    path = "/api"

    @post("/event", status_code=ACCEPTED, summary="Record one event")
    async def event(
        self,
        request: Request[None, None, State],
        ingest: NamedDependency[Ingest],
        settings: NamedDependency[Settings],
    ) -> dict[str, int]:
        return {"accepted": await ingest.single(await request.body(), _context(request, settings))}

    @post("/events", status_code=ACCEPTED, summary="Record a batch of events, all or none")
    async def events(
        self,
        request: Request[None, None, State],
        ingest: NamedDependency[Ingest],
        settings: NamedDependency[Settings],
    ) -> dict[str, int]:
        return {"accepted": await ingest.batch(await request.body(), _context(request, settings))}


@get("/p.js", include_in_schema=False)
async def tracker_script(
    request: Request[None, None, State], tracker: NamedDependency[TrackerScript]
) -> Response[bytes]:
    return _serve(request, tracker, pinned=False)


def pinned_tracker_script(versioned_name: str) -> HTTPRouteHandler:
    """The route for /p.<hash>.js; the name is known once the build is read, at app creation."""

    @get(f"/{versioned_name}", include_in_schema=False)
    async def pinned(
        request: Request[None, None, State], tracker: NamedDependency[TrackerScript]
    ) -> Response[bytes]:
        return _serve(request, tracker, pinned=True)

    return pinned


def _serve(request: Request[None, None, State], tracker: TrackerScript, *, pinned: bool) -> Response[bytes]:
    headers = request.headers
    return tracker.response(headers.get("if-none-match"), headers.get("accept-encoding", ""), pinned=pinned)
