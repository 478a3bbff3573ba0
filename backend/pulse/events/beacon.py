"""The tracker's wire format: what a browser may send, and the limits on it.

Keys are one letter because every byte of the beacon is paid for on every pageview.
The payload is documented in the README ("Tracker payload").
"""

from __future__ import annotations

from typing import Annotated
from urllib.parse import urlsplit

import msgspec

Url = Annotated[str, msgspec.Meta(min_length=1, max_length=2048)]
Name = Annotated[str, msgspec.Meta(min_length=1, max_length=120)]
SiteKey = Annotated[str, msgspec.Meta(min_length=1, max_length=64)]
PropKey = Annotated[str, msgspec.Meta(min_length=1, max_length=64)]
PropValue = Annotated[str, msgspec.Meta(max_length=256)]
MAX_PROPS = 30
# A stretch of visible time on one page; a day or more is a screen left on, not a reader.
EngagementMs = Annotated[int, msgspec.Meta(ge=0, le=86_400_000)]
# The tracker's first-party id (data-visitor="cookie"): String(Math.random()) fits.
ClientId = Annotated[str, msgspec.Meta(min_length=1, max_length=32, pattern=r"^[0-9A-Za-z._-]+$")]
# The event's own id, chosen by the sender, so that a resent copy is counted once: the tracker
# sends Math.random(); server-side senders may send a string of their own.
SendId = Annotated[float, msgspec.Meta(ge=0, lt=1)] | ClientId


class Beacon(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    s: SiteKey
    u: Url
    n: Name = "pageview"
    r: Annotated[str, msgspec.Meta(max_length=2048)] = ""
    w: Annotated[int, msgspec.Meta(ge=0, le=100_000)] = 0
    p: dict[PropKey, PropValue] | None = None
    e: EngagementMs = 0
    i: ClientId | None = None
    x: SendId | None = None


class BeaconError(ValueError):
    """A beacon the collector refuses, with the JSON path of the offending field."""

    def __init__(self, reason: str, field: str) -> None:
        super().__init__(reason)
        self.reason = reason
        self.field = field


_single = msgspec.json.Decoder(Beacon)
_batch = msgspec.json.Decoder(list[Beacon])

_FIELD_NAMES = {
    "s": "site",
    "u": "url",
    "n": "name",
    "r": "referrer",
    "w": "width",
    "p": "props",
    "e": "engagement ms",
    "i": "visitor id",
    "x": "event id",
}


def decode_single(body: bytes) -> Beacon:
    beacon = _decode(_single, body)
    check(beacon, "$")
    return beacon


def decode_batch(body: bytes, max_events: int) -> list[Beacon]:
    beacons = _decode(_batch, body)
    if not beacons:
        raise BeaconError("a batch must hold at least one event", "$")
    if len(beacons) > max_events:
        raise BeaconError(f"a batch may hold at most {max_events} events, got {len(beacons)}", "$")
    for index, beacon in enumerate(beacons):
        check(beacon, f"$[{index}]")
    return beacons


def _decode[T](decoder: msgspec.json.Decoder[T], body: bytes) -> T:
    try:
        return decoder.decode(body)
    except msgspec.ValidationError as exc:
        message = str(exc)
        path = message.rsplit(" - at `", 1)[1].rstrip("`") if " - at `" in message else "$"
        raise BeaconError(_explain(message.split(" - at `", 1)[0], path), path) from exc
    except msgspec.DecodeError as exc:
        raise BeaconError(f"body is not valid JSON: {exc}", "$") from exc


def _explain(message: str, path: str) -> str:
    leaf = path.rsplit(".", 1)[-1].split("[", 1)[0]
    name = _FIELD_NAMES.get(leaf)
    return f"{message} (field `{leaf}`: {name})" if name else message


def _is_page_url(url: str) -> bool:
    try:
        parts = urlsplit(url)
        # Reading the host can fail too, on a bracketed host that is not an IP address.
        return parts.scheme in ("http", "https") and bool(parts.hostname)
    except ValueError:
        # Unbalanced brackets, or characters that normalise to URL delimiters.
        return False


def check(beacon: Beacon, at: str) -> None:
    """What msgspec's types cannot say: the URL is a page URL, and the props are few enough."""
    if not _is_page_url(beacon.u):
        raise BeaconError("url must be an absolute http(s) URL with a host (field `u`: url)", f"{at}.u")
    if beacon.p is not None and len(beacon.p) > MAX_PROPS:
        raise BeaconError(f"at most {MAX_PROPS} props are allowed (field `p`: props)", f"{at}.p")
