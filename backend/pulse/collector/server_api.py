"""POST /api/v1/events: server-side events from a tenant's backend, with a bearer token.

The events are the Redpanda Connect path's (pulse.connect.server_events) and are checked the same
way, then admitted like beacons (site enabled, allowed hosts, the site's rate limit) and answered
202 only once Kafka has acknowledged them. What differs is who may send: a token with events:write,
and only for its own tenant's sites; another tenant's site is as unknown as a missing one.
A request is accepted or refused whole, like a beacon batch.
"""

from __future__ import annotations

import copy
import dataclasses
import time
from dataclasses import dataclass
from typing import Any

import msgspec
from litestar import Request, post
from litestar.datastructures import State
from litestar.exceptions import NotAuthorizedException
from litestar.handlers import HTTPRouteHandler
from litestar.openapi.spec import Operation

from pulse.auth.tokens import InvalidToken, TokenService
from pulse.collector.ingest import Admission, Edge, Ingest, Rejection
from pulse.collector.limits import RateLimiter, retry_after_s
from pulse.collector.openapi import Accepted, Failure, Refusal
from pulse.collector.sites import SiteDirectory
from pulse.connect.server_events import Admissible, InvalidEvent, ServerEvent, parse_server_event, server_path
from pulse.events.message import EventV1
from pulse.settings import Settings
from pulse.telemetry.metrics import Metrics
from pulse.tenancy import TenantScope

PATH = "/api/v1/events"
_array = msgspec.json.Decoder(list[msgspec.Raw])


class ServerEventsApi:
    def __init__(
        self,
        settings: Settings,
        sites: SiteDirectory,
        edge: Edge,
        ingest: Ingest,
        tokens: TokenService,
        metrics: Metrics,
    ) -> None:
        # A backend sends every visitor's events from its own address, and their `ip` is the
        # visitor's, possibly absent: a per-IP limit would throttle unrelated visitors as one. The
        # caller is limited per token instead; sites keep the limit they have for beacons.
        api_edge = dataclasses.replace(edge, per_ip=RateLimiter(0, 1))
        self._admission = Admission(settings, sites, api_edge, metrics, senders_name_visitors=True)
        self._sites = sites
        self._ingest = ingest
        self._tokens = tokens
        self._max_events = settings.max_batch_events
        self._max_age_ms = settings.server_event_max_age_s * 1000
        # Per collector process, like its other limits; a minute's worth may come at once.
        per_min = settings.api_rate_limit_per_min
        self._per_caller = RateLimiter(per_min / 60, per_min)

    async def scope(self, authorization: str | None) -> TenantScope:
        scheme, _, token = (authorization or "").partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise NotAuthorizedException("a bearer token is required", headers={"WWW-Authenticate": "Bearer"})
        try:
            return await self._tokens.verify(token.strip())
        except InvalidToken as exc:
            raise NotAuthorizedException(
                f"invalid token: {exc}", headers={"WWW-Authenticate": 'Bearer error="invalid_token"'}
            ) from exc

    async def accept(self, scope: TenantScope, body: bytes) -> int:
        """The number of events written (bots' are dropped silently), or a Rejection."""
        scope.require("events:write")
        wait = self._per_caller.take(f"{scope.tenant_id}:{scope.subject}")
        if wait > 0:
            raise Rejection(429, "too many requests with this token; slow down", "", retry_after_s(wait))
        events = self._parse(body)
        await self._check_tenant(scope, events)
        admitted: list[EventV1] = []
        for at, event in events:
            try:
                admitted += await self._admission.admit([event.beacon], event.context, event.ts_ms)
            except Rejection as exc:
                raise Rejection(
                    exc.status, exc.reason, _at(at, server_path(exc.field)), exc.retry_after_s
                ) from exc
        return await self._ingest.publish(admitted)

    def _parse(self, body: bytes) -> list[tuple[str, Admissible]]:
        """Each event with the JSON path it is at: `$` for a lone object, `$[i]` in an array."""
        if body.lstrip()[:1] == b"[":
            try:
                raws = _array.decode(body)
            except (msgspec.DecodeError, msgspec.ValidationError) as exc:
                raise self._invalid(f"body is not valid JSON: {exc}", "$", 1) from exc
            if not raws:
                raise self._invalid("an array must hold at least one event", "$", 1)
            if len(raws) > self._max_events:
                raise self._invalid(f"at most {self._max_events} events per request, got {len(raws)}", "$", 1)
            payloads = [(f"$[{index}]", bytes(raw)) for index, raw in enumerate(raws)]
        else:
            payloads = [("$", body)]
        now_ms = int(time.time() * 1000)
        parsed: list[tuple[str, Admissible]] = []
        for at, payload in payloads:
            try:
                parsed.append((at, parse_server_event(payload, now_ms, self._max_age_ms)))
            except InvalidEvent as exc:
                where = "" if at == "$" else f"event {at[2:-1]}: "
                raise self._invalid(
                    f"{where}{_without_path(exc.reason)}", _at(at, exc.field), len(payloads)
                ) from exc
        return parsed

    async def _check_tenant(self, scope: TenantScope, events: list[tuple[str, Admissible]]) -> None:
        """Before admission, so another tenant's site cannot be told apart or spend its rate limit."""
        checked: set[str] = set()
        for at, event in events:
            key = event.beacon.s
            if key in checked:
                continue
            site = await self._sites.resolve(key)
            if site is None or site.tenant_id != scope.tenant_id:
                self._admission.drop("unknown_site", len(events))
                raise Rejection(404, f"unknown site key {key!r}", f"{at}.site")
            checked.add(key)

    def _invalid(self, reason: str, field: str, count: int) -> Rejection:
        self._admission.drop("invalid", count)
        return Rejection(400, reason, field)


def _at(prefix: str, path: str) -> str:
    """`$.url` of the event at `$[2]`: `$[2].url`."""
    return prefix + path.removeprefix("$") if path.startswith("$") else path


def _without_path(reason: str) -> str:
    # The path is the response's `field`, made absolute there; the relative one would mislead.
    return reason.rsplit(" - at `", 1)[0]


def server_event_routes(api: ServerEventsApi, settings: Settings) -> list[HTTPRouteHandler]:
    @post(
        PATH,
        status_code=202,
        summary="Record server-side events (events:write)",
        operation_class=_operation(settings.max_batch_events, settings.max_body_bytes),
        tags=["events"],
    )
    async def server_events(request: Request[None, None, State]) -> Accepted:
        # The token is checked before the body is read: an anonymous caller costs nothing more.
        scope = await api.scope(request.headers.get("authorization"))
        return Accepted(await api.accept(scope, await request.body()))

    return [server_events]


def _schema(kind: type[msgspec.Struct]) -> dict[str, Any]:
    _, components = msgspec.json.schema_components([kind])
    return copy.deepcopy(components[kind.__name__])


def _json(kind: type[msgspec.Struct]) -> dict[str, Any]:
    return {"application/json": {"schema": _schema(kind)}}


_EXAMPLE = {
    "site": "k7hq2m9xwz3p",
    "url": "https://shop.example/checkout/done",
    "name": "purchase",
    "user_agent": "Mozilla/5.0 (X11; Linux x86_64) Firefox/132.0",
    "ip": "203.0.113.7",
    "timestamp": "2026-11-21T10:00:00Z",
    "props": {"plan": "pro"},
}


def _operation(max_events: int, max_body_bytes: int) -> type[Operation]:
    """The body is read raw (a JSON object or an array), so the operation is described by hand."""
    event = _schema(ServerEvent)
    event["description"] = (
        "One event as a site's backend saw it: the visitor's `user_agent`, and `ip` or a `visitor` id of "
        "the site's own. `timestamp` (RFC 3339, with a zone) defaults to now; it may be up to a day old."
    )
    retry = {"Retry-After": {"required": True, "schema": {"type": "integer", "minimum": 1}}}

    @dataclass
    class ServerEventsOperation(Operation):
        def to_schema(self) -> dict[str, Any]:
            schema = super().to_schema()
            body = {
                "oneOf": [event, {"type": "array", "items": event, "minItems": 1, "maxItems": max_events}]
            }
            schema["requestBody"] = {
                "required": True,
                "description": f"One event, or an array of 1 to {max_events}: all are stored, or none.",
                "content": {"application/json": {"schema": body, "example": _EXAMPLE}},
            }
            schema["security"] = [{"bearer": []}]
            schema["responses"] = {
                "202": {
                    "description": "Recorded (bots' events are dropped and not counted).",
                    "content": _json(Accepted),
                },
                "400": {
                    "description": "An event is invalid; `field` is its JSON path, `$[i].field` in an array.",
                    "content": _json(Refusal),
                },
                "401": {
                    "description": "No bearer token, or one that is invalid or expired.",
                    "content": _json(Failure),
                },
                "403": {
                    "description": "The token lacks events:write, or the site is disabled or does not accept "
                    "the URL's host.",
                    "content": _json(Refusal),
                },
                "404": {
                    "description": "No site of the token's tenant has this key.",
                    "content": _json(Refusal),
                },
                "413": {
                    "description": f"The body is over {max_body_bytes} bytes.",
                    "content": _json(Failure),
                },
                "429": {
                    "description": "Too many requests with this token, or events for this site.",
                    "headers": copy.deepcopy(retry),
                    "content": _json(Refusal),
                },
                "503": {
                    "description": "The event store is unavailable; nothing was stored.",
                    "headers": copy.deepcopy(retry),
                    "content": _json(Failure),
                },
            }
            return schema

    return ServerEventsOperation
