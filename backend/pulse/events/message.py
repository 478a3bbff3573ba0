"""Versioned Kafka messages: the contract between the collector and the workers.

msgpack with array-like structs: field names never travel, and the tag in the first
slot names the version, so a v2 can be added to `AnyEvent` while v1 messages already
in the topic still decode.
"""

from __future__ import annotations

import msgspec


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
