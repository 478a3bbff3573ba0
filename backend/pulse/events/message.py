"""Versioned Kafka messages: the contract between the collector and the workers.

msgpack with array-like structs: field names never travel, and the tag in the first
slot names the version, so a v2 can be added to `AnyEvent` while v1 messages already
in the topic still decode.
"""

from __future__ import annotations

import msgspec


class Enrichment(msgspec.Struct, array_like=True, frozen=True, gc=False):
    """What the rollup worker derived from an event, carried by replayed events.

    Raw rows keep no User-Agent and no query string beyond UTM tags (privacy), so a replay
    carries what was derived from them instead of deriving it again.
    """

    browser: str
    browser_version: str
    os: str
    os_version: str
    device: str
    source: str
    channel: str
    utm_source: str
    utm_medium: str
    utm_campaign: str
    utm_content: str
    utm_term: str


# gc=False: an event holds only strings, numbers and a dict of strings, never a cycle, and the
# worker holds tens of thousands at once; untracked, they cost the cyclic GC nothing.
class EventV1(msgspec.Struct, array_like=True, tag=1, frozen=True, gc=False):
    event_id: bytes
    tenant_id: str
    site_id: str
    ts_ms: int
    name: str
    url: str
    referrer: str
    visitor_id: int
    user_agent: str
    screen_width: int
    props: dict[str, str]
    # Fields added later go last, with defaults, so messages already in the topic decode.
    engagement_ms: int = 0
    # ISO 3166-1 alpha-2, '' when unknown; the IP it came from is never sent.
    country: str = ""
    # Set only on replayed events (topic events.replay).
    enrichment: Enrichment | None = None


AnyEvent = EventV1

_encoder = msgspec.msgpack.Encoder()
_decoder = msgspec.msgpack.Decoder(AnyEvent)


def encode(event: AnyEvent) -> bytes:
    return _encoder.encode(event)


def decode(payload: bytes) -> AnyEvent:
    """Raises msgspec.DecodeError/ValidationError for poison messages; callers route those to the DLQ."""
    return _decoder.decode(payload)


def partition_key(event: AnyEvent) -> bytes:
    """One visitor's events share a partition, so they stay in order for sessionization."""
    return f"{event.site_id}:{event.visitor_id}".encode()
