"""EventV1 → a row of the `events` table."""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Sequence
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


@functools.lru_cache(maxsize=65_536)
def _page(url: str) -> tuple[str, str, str]:
    """(hostname, path, query) of a page URL: a site's events come from few distinct URLs."""
    parts = urlsplit(url)
    return (parts.hostname or "")[:253], (parts.path or "/")[:2048], parts.query


def to_row(
    event: AnyEvent,
    partition: int,
    offset: int,
    epoch: str = "",
    session: SessionMark | None = None,
    retention_days: int = DEFAULT_RETENTION_DAYS,
) -> list[Any]:
    hostname, path, query = _page(event.url)
    # DateTime64(3) columns take milliseconds as they are: no datetime objects to make and unmake.
    return [
        event.tenant_id,
        event.site_id,
        event.ts_ms,
        event.event_id,
        event.name,
        hostname,
        path,
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
        event.ts_ms if session is None else session.start_ms,
        retention_days,
        *enrich(event, hostname, query),
    ]


def dedup_token(events: Sequence[AnyEvent]) -> str:
    """Same events in the same order → same token, so a retried insert is dropped by ClickHouse."""
    digest = hashlib.blake2b(digest_size=16)
    for event in events:
        digest.update(event.event_id)
    return digest.hexdigest()
