"""What the collector's OpenAPI schema says about /api/event and /api/events.

The handlers read the raw body themselves (browsers send beacons as text/plain, and the
decoder's refusals name JSON paths), so Litestar cannot infer a request body from their
signatures. The operations here describe it instead, from the same msgspec types that
decode it: `Beacon` for the body, `Accepted`/`Refusal`/`Failure` for the answers. Only
what the types cannot carry is added by hand: the checks `pulse.events.beacon` runs after
decoding (an absolute http(s) URL with a host, at most MAX_PROPS props) and the limits.
The handlers answer 202 with a pre-encoded `Accepted`, described here too.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Annotated, Any

import msgspec
from litestar.openapi.spec import Operation

from pulse.events.beacon import MAX_PROPS, Beacon

# Strings matching this (and the length limits) pass the beacon's URL check: scheme http or
# https, then a non-empty ASCII host, then an optional port, then anything after / ? or #.
# The check admits a little more (IPv6 literals, user info, leading blanks); the schema
# promises only what is certain to pass. tests/test_collector_schema.py holds the two together.
URL_PATTERN = r"^[Hh][Tt][Tt][Pp][Ss]?://[0-9A-Za-z._~!$&'()*+,;=%-]+(:[0-9]*)?([/?#]|$)"

MEDIA_TYPES = ("application/json", "text/plain")

_FIELDS = {
    "s": "Site key, from the site's settings in the dashboard.",
    "u": "Page URL: absolute, http or https, with a host.",
    "n": 'Event name; "pageview" unless the page records a custom event.',
    "r": "Referrer URL, empty when there is none.",
    "w": "Viewport width in CSS pixels, 0 when unknown.",
    "p": f"Custom properties of the event, at most {MAX_PROPS}.",
    "e": "Engaged time on the page in milliseconds, for engagement events.",
    "i": 'First-party visitor id, sent by the tracker with data-visitor="cookie"; used only for a site '
    "whose visitor mode is cookie, ignored (the daily hash counts) for a cookieless one.",
    "x": "The event's own id, chosen by the sender (a number in [0, 1) or a short string): a resent "
    "copy with the same id is counted once.",
}
if set(_FIELDS) != set(Beacon.__struct_fields__):  # pragma: no cover - a new beacon field needs words here
    raise RuntimeError(f"describe every Beacon field in {__name__}: {sorted(Beacon.__struct_fields__)}")

EXAMPLE = {
    "s": "k7hq2m9xwz3p",
    "u": "https://shop.example/pricing",
    "r": "https://search.example/",
    "w": 1280,
}


class Accepted(msgspec.Struct, frozen=True):
    accepted: Annotated[
        int,
        msgspec.Meta(
            ge=0,
            description="Events stored. 0 when the User-Agent is a bot: its events are dropped silently.",
        ),
    ]


class Refusal(msgspec.Struct, frozen=True):
    error: Annotated[str, msgspec.Meta(description="Why the request was refused.")]
    field: Annotated[
        str,
        msgspec.Meta(
            description="JSON path of the value at fault, `$` for the whole body, empty when no value is."
        ),
    ]


class Failure(msgspec.Struct, frozen=True):
    error: Annotated[str, msgspec.Meta(description="Why the request could not be served.")]


def beacon_schema() -> dict[str, Any]:
    """JSON Schema of one beacon, from the msgspec Struct plus the checks run after decoding."""
    _, components = msgspec.json.schema_components([Beacon])
    schema: dict[str, Any] = copy.deepcopy(components["Beacon"])
    schema["description"] = (
        "One event, as the tracker sends it: keys are one letter to keep beacons small. "
        "Integers are written as integers: 1280, not 1280.0 or 1.28e3."
    )
    properties: dict[str, dict[str, Any]] = schema["properties"]
    for key, words in _FIELDS.items():
        properties[key]["description"] = words
    properties["u"]["pattern"] = URL_PATTERN
    props = next(branch for branch in properties["p"]["anyOf"] if branch.get("type") == "object")
    props["maxProperties"] = MAX_PROPS
    return schema


def batch_schema(max_events: int) -> dict[str, Any]:
    return {
        "type": "array",
        "description": "Events to record together: all are stored, or none.",
        "items": beacon_schema(),
        "minItems": 1,
        "maxItems": max_events,
    }


def _json(kind: type[msgspec.Struct]) -> dict[str, Any]:
    _, components = msgspec.json.schema_components([kind])
    return {"application/json": {"schema": components[kind.__name__]}}


_RETRY_AFTER = {
    "Retry-After": {
        "description": "Seconds to wait before sending again.",
        "required": True,
        "schema": {"type": "integer", "minimum": 1},
    }
}


def request_body(schema: dict[str, Any], example: object, what: str) -> dict[str, Any]:
    return {
        "required": True,
        "description": (
            f"{what} as JSON. Browsers send it as text/plain (navigator.sendBeacon, no CORS preflight); "
            "the collector reads the body as JSON whatever its Content-Type."
        ),
        "content": {media: {"schema": schema, "example": example} for media in MEDIA_TYPES},
    }


def responses(max_body_bytes: int, refused: str) -> dict[str, Any]:
    """Every answer the collector gives: 202 and each refusal."""
    return {
        "202": {
            "description": "Recorded; for a bot, dropped without a word (accepted is 0).",
            "content": _json(Accepted),
        },
        "400": {"description": f"{refused} `field` is the JSON path at fault.", "content": _json(Refusal)},
        "403": {
            "description": "The site is disabled, or does not accept events from the URL's host.",
            "content": _json(Refusal),
        },
        "404": {"description": "No site has this key.", "content": _json(Refusal)},
        "413": {"description": f"The body is over {max_body_bytes} bytes.", "content": _json(Failure)},
        "429": {
            "description": "Too many events from this address or for this site.",
            "headers": copy.deepcopy(_RETRY_AFTER),
            "content": _json(Refusal),
        },
        "503": {
            "description": "The event store is unavailable or has too many events in flight; nothing was stored.",
            "headers": copy.deepcopy(_RETRY_AFTER),
            "content": _json(Failure),
        },
    }


def event_operation(max_body_bytes: int) -> type[Operation]:
    """The Operation class for POST /api/event: one beacon."""

    @dataclass
    class EventOperation(Operation):
        def to_schema(self) -> dict[str, Any]:
            schema = super().to_schema()
            schema["requestBody"] = request_body(beacon_schema(), EXAMPLE, "One event")
            schema["responses"] = responses(max_body_bytes, "The body is not one valid event.")
            return schema

    return EventOperation


def batch_operation(max_events: int, max_body_bytes: int) -> type[Operation]:
    """The Operation class for POST /api/events: a JSON array of 1..max_events beacons."""

    @dataclass
    class BatchOperation(Operation):
        def to_schema(self) -> dict[str, Any]:
            schema = super().to_schema()
            example = [EXAMPLE, {**EXAMPLE, "n": "signup", "p": {"plan": "pro"}}]
            schema["requestBody"] = request_body(
                batch_schema(max_events), example, f"An array of 1 to {max_events} events"
            )
            schema["responses"] = responses(
                max_body_bytes, f"The body is not an array of 1 to {max_events} valid events."
            )
            return schema

    return BatchOperation
