"""HTTP edge of the collector: a few lines per handler, the logic lives in Ingest."""

from __future__ import annotations

import functools

import msgspec
from litestar import Request, Response, get, post
from litestar.datastructures import State
from litestar.di import NamedDependency
from litestar.handlers import HTTPRouteHandler
from litestar.types import ASGIApp, Receive, Scope, Send

from pulse.collector.ingest import Ingest, RequestContext
from pulse.collector.openapi import Accepted, batch_operation, event_operation
from pulse.collector.privacy import TrustedProxies, client_ip
from pulse.collector.tracker import TrackerScript
from pulse.settings import Settings

ACCEPTED = 202


class _Answer:
    """The 202, encoded once per count of accepted events.

    Handlers return it as a finished ASGI response, which Litestar sends as it is: building a
    Response from a value each time cost a tenth of a beacon's time. Messages are fresh dicts
    per request, because middleware (CORS) adds headers to them.
    """

    __slots__ = ("_body", "_headers")

    def __init__(self, accepted: int) -> None:
        self._body = msgspec.json.encode(Accepted(accepted))
        self._headers = (
            (b"content-type", b"application/json"),
            (b"content-length", str(len(self._body)).encode()),
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": ACCEPTED, "headers": list(self._headers)})
        await send({"type": "http.response.body", "body": self._body, "more_body": False})


@functools.cache
def _answer(accepted: int) -> _Answer:
    return _Answer(accepted)


def event_routes(ingest: Ingest, settings: Settings) -> list[HTTPRouteHandler]:
    """POST /api/event and /api/events, closed over the Ingest they feed.

    No dependency injection on this path: Litestar resolves injected values in a task group
    per request, which cost about as much as everything else the collector does. The body
    is read raw and decoded by pulse.events.beacon, so the OpenAPI operations describe it by
    hand (pulse.collector.openapi), with the configured limits.
    """
    trusted = TrustedProxies(settings.trusted_proxies)

    def context(request: Request[None, None, State]) -> RequestContext:
        peer = request.client.host if request.client else None
        headers = request.headers
        # A proxy may append its own X-Forwarded-For line (HAProxy does) after the visitor's:
        # the lines read as one list, in order.
        forwarded = headers.getall("x-forwarded-for", None)
        ip = client_ip(peer, ",".join(forwarded) if forwarded else None, trusted)
        return RequestContext(ip=ip, user_agent=headers.get("user-agent", ""))

    @post(
        "/api/event",
        status_code=ACCEPTED,
        summary="Record one event",
        operation_class=event_operation(settings.max_body_bytes),
    )
    async def event(request: Request[None, None, State]) -> ASGIApp:
        return _answer(await ingest.single(await request.body(), context(request)))

    @post(
        "/api/events",
        status_code=ACCEPTED,
        summary="Record a batch of events, all or none",
        operation_class=batch_operation(settings.max_batch_events, settings.max_body_bytes),
    )
    async def events(request: Request[None, None, State]) -> ASGIApp:
        return _answer(await ingest.batch(await request.body(), context(request)))

    return [event, events]


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
