"""EventV1 → a row of the `events` table."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

from pulse.enrichment.event import COLUMNS as ENRICHMENT_COLUMNS
from pulse.enrichment.event import enrich
from pulse.events.message import AnyEvent
from pulse.oltp.accounts import DEFAULT_RETENTION_DAYS
from pulse.rollup.sessions import SessionMark

COLUMNS = (
    "tenant_id",
    "site_id",
    "ts",
    "event_id",
    "name",
    "hostname",
    "pathname",
    "referrer",
    "visitor_id",
    "screen_width",
    "props",
    "kafka_partition",
    "kafka_offset",
    "engagement_ms",
    "country",
    "kafka_epoch",
    "session_id",
    "session_start",
    "retention_days",
    # browser … utm_term (migration 0007), from the User-Agent, referrer and page URL.
    *ENRICHMENT_COLUMNS,
)


def to_row(
    event: AnyEvent,
    partition: int,
    offset: int,
    epoch: str = "",
    session: SessionMark | None = None,
    retention_days: int = DEFAULT_RETENTION_DAYS,
) -> list[Any]:
    parts = urlsplit(event.url)
    hostname = (parts.hostname or "")[:253]
    return [
        event.tenant_id,
        event.site_id,
        datetime.fromtimestamp(event.ts_ms / 1000, UTC),
        event.event_id,
        event.name,
        hostname,
        (parts.path or "/")[:2048],
        event.referrer,
        event.visitor_id,
        min(event.screen_width, 65535),
        event.props,
        partition,
        offset,
        event.engagement_ms,
        event.country,
        epoch,
        0 if session is None else session.session_id,
        datetime.fromtimestamp((event.ts_ms if session is None else session.start_ms) / 1000, UTC),
        retention_days,
        *enrich(event, hostname, parts.query),
    ]


def dedup_token(events: Sequence[AnyEvent]) -> str:
    """Same events in the same order → same token, so a retried insert is dropped by ClickHouse."""
    digest = hashlib.blake2b(digest_size=16)
    for event in events:
        digest.update(event.event_id)
    return digest.hexdigest()
