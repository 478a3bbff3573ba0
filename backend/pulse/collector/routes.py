"""HTTP edge of the collector: a few lines per handler, the logic lives in Ingest."""

from __future__ import annotations

from litestar import Controller, Request, Response, get, post
from litestar.datastructures import State
from litestar.di import NamedDependency
from litestar.handlers import BaseRouteHandler, HTTPRouteHandler

from pulse.collector.ingest import Ingest, RequestContext
from pulse.collector.openapi import Accepted, batch_operation, event_operation
from pulse.collector.privacy import client_ip
from pulse.collector.tracker import TrackerScript
from pulse.settings import Settings

ACCEPTED = 202
RECORDED = "Recorded; for a bot, dropped without a word (accepted is 0)."


def _context(request: Request[None, None, State], settings: NamedDependency[Settings]) -> RequestContext:
    peer = request.client.host if request.client else None
    ip = client_ip(peer, request.headers.get("x-forwarded-for"), settings.trusted_proxies)
    return RequestContext(ip=ip, user_agent=request.headers.get("user-agent", ""))


class EventController(Controller):
    """The body is read raw and decoded by pulse.events.beacon, so the schema is described by hand
    (pulse.collector.openapi); `event_controller` fills in the configured limits."""

    path = "/api"

    @post("/event", status_code=ACCEPTED, summary="Record one event", response_description=RECORDED)
    async def event(
        self,
        request: Request[None, None, State],
        ingest: NamedDependency[Ingest],
        settings: NamedDependency[Settings],
    ) -> Accepted:
        return Accepted(await ingest.single(await request.body(), _context(request, settings)))

    @post(
        "/events",
        status_code=ACCEPTED,
        summary="Record a batch of events, all or none",
        response_description=RECORDED,
    )
    async def events(
        self,
        request: Request[None, None, State],
        ingest: NamedDependency[Ingest],
        settings: NamedDependency[Settings],
    ) -> Accepted:
        return Accepted(await ingest.batch(await request.body(), _context(request, settings)))


def event_controller(settings: Settings) -> type[EventController]:
    """The controller with its OpenAPI operations stating the configured batch and body limits."""
    operations = {
        "event": event_operation(settings.max_body_bytes),
        "events": batch_operation(settings.max_batch_events, settings.max_body_bytes),
    }

    class ConfiguredEventController(EventController):
        def get_route_handlers(self) -> list[BaseRouteHandler]:
            handlers = super().get_route_handlers()
            for handler in handlers:
                if isinstance(handler, HTTPRouteHandler):
                    handler.operation_class = operations.get(handler.handler_name, handler.operation_class)
            return handlers

    return ConfiguredEventController


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
