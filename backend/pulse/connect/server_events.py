"""Server-side events: JSON a site's backend sends, turned into what the collector admits.

A server knows the visitor's IP address and User-Agent (or its own visitor id) and, when it sends
events later, their time; the rest is a beacon's fields under readable names.
"""

from __future__ import annotations

import ipaddress
from datetime import datetime
from typing import Annotated

import msgspec

from pulse.collector.ingest import RequestContext
from pulse.events.beacon import (
    Beacon,
    BeaconError,
    ClientId,
    EngagementMs,
    Name,
    PropKey,
    PropValue,
    SiteKey,
    Url,
    check,
)

MAX_USER_AGENT = 512
# A clock a little ahead of ours is a clock, not an event from the future.
FUTURE_SKEW_MS = 60_000


class ServerEvent(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    site: SiteKey
    url: Url
    name: Name = "pageview"
    referrer: Annotated[str, msgspec.Meta(max_length=2048)] = ""
    user_agent: Annotated[str, msgspec.Meta(max_length=MAX_USER_AGENT)] = ""
    ip: Annotated[str, msgspec.Meta(max_length=45)] = ""
    visitor: ClientId | None = None
    timestamp: datetime | None = None
    screen_width: Annotated[int, msgspec.Meta(ge=0, le=100_000)] = 0
    props: dict[PropKey, PropValue] | None = None
    engagement_ms: EngagementMs = 0


class Admissible(msgspec.Struct, frozen=True):
    """One event as the collector's admission takes it, with the time it happened."""

    beacon: Beacon
    context: RequestContext
    ts_ms: int


class InvalidEvent(ValueError):
    """An event refused before admission; the message names the field and the reason.

    `field` is the JSON path at fault in a server event (`$.url`), `$` for the whole of it, or ''
    where the event was not JSON (an access-log line).
    """

    def __init__(self, reason: str, field: str = "") -> None:
        super().__init__(reason)
        self.reason = reason
        self.field = field


_decoder = msgspec.json.Decoder(ServerEvent)
# A beacon's one-letter fields under the names a server event gives them.
_SERVER_NAMES = {
    "s": "site",
    "u": "url",
    "n": "name",
    "r": "referrer",
    "w": "screen_width",
    "p": "props",
    "e": "engagement_ms",
    "i": "visitor",
}


def parse_server_event(payload: bytes, now_ms: int, max_age_ms: int) -> Admissible:
    try:
        event = _decoder.decode(payload)
    except msgspec.ValidationError as exc:
        raise InvalidEvent(str(exc), _path_in(str(exc))) from exc
    except msgspec.DecodeError as exc:
        raise InvalidEvent(f"not a JSON event: {exc}", "$") from exc
    if not event.user_agent.strip():
        # As from a browser: without one, the event is a script's, and the workers drop it as a bot.
        raise InvalidEvent(
            "an event needs `user_agent`: the visitor's, from the request the server answered", "$.user_agent"
        )
    if event.visitor is None and not event.ip:
        raise InvalidEvent("an event needs `visitor` or `ip` to tell visitors apart", "$.visitor")
    if event.ip:
        check_ip(event.ip, "$.ip")
    try:
        beacon = beacon_of(
            s=event.site,
            u=event.url,
            n=event.name,
            r=event.referrer,
            w=event.screen_width,
            p=event.props,
            e=event.engagement_ms,
            i=event.visitor,
        )
    except InvalidEvent as exc:
        raise InvalidEvent(exc.reason, server_path(exc.field)) from exc
    ts_ms = now_ms if event.timestamp is None else _timestamp_ms(event.timestamp)
    check_time(ts_ms, now_ms, max_age_ms, "$.timestamp")
    return Admissible(beacon, RequestContext(ip=event.ip, user_agent=event.user_agent), ts_ms)


def beacon_of(**fields: object) -> Beacon:
    """A beacon checked as the collector checks one, so no source gets around the tracker's limits."""
    try:
        beacon = msgspec.convert(fields, Beacon)
        check(beacon, "$")
    except msgspec.ValidationError as exc:
        raise InvalidEvent(str(exc), _path_in(str(exc))) from exc
    except BeaconError as exc:
        raise InvalidEvent(str(exc), exc.field) from exc
    return beacon


def server_path(beacon_path: str) -> str:
    """`$.u` as a server event names it: `$.url`."""
    head, dot, rest = beacon_path.removeprefix("$.").partition(".")
    if not beacon_path.startswith("$.") or head not in _SERVER_NAMES:
        return beacon_path
    return f"$.{_SERVER_NAMES[head]}{dot}{rest}"


def _path_in(message: str) -> str:
    """The path msgspec puts at the end of a validation message (`... - at `$.url``)."""
    _, at, path = message.rpartition(" - at `")
    return path.rstrip("`") if at else "$"


def check_time(ts_ms: int, now_ms: int, max_age_ms: int, field: str = "") -> None:
    if ts_ms > now_ms + FUTURE_SKEW_MS:
        raise InvalidEvent("`timestamp` is in the future", field)
    if ts_ms < now_ms - max_age_ms:
        raise InvalidEvent(
            f"`timestamp` is more than {max_age_ms // 1000} s old, the most this pipeline accepts", field
        )


def _timestamp_ms(moment: datetime) -> int:
    if moment.tzinfo is None:
        raise InvalidEvent(
            "`timestamp` needs a time zone (RFC 3339, such as 2026-11-21T10:00:00Z)", "$.timestamp"
        )
    return int(moment.timestamp() * 1000)


def check_ip(ip: str, field: str = "") -> None:
    try:
        ipaddress.ip_address(ip)
    except ValueError:
        raise InvalidEvent(f"`ip` is not an IP address: {ip!r}", field) from None
