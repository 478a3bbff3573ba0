"""The archive of `events.raw`: one JSON line per event, gzip files in one folder per UTC day.

Layout (the archive pipeline in collectors/ writes it, `pulse replay --from-archive` reads it
with ClickHouse's `file()`):

    <root>/events/date=YYYY-MM-DD/<any name>.jsonl.gz

A file holds events of its day only. The same event may be in two files (the pipeline delivers
at least once); readers fold duplicates by `event_id`. An archived event is the collector's
event minus what must not be kept: its page URL keeps only the query parameters enrichment
reads (UTM tags, ad click ids), so a replay derives browser, OS, source and channel again with
the code of its day, which a replay from the raw table cannot.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import msgspec

from pulse.enrichment.utm import tagged_query
from pulse.events.message import EventV1

FOLDER = "events"


class ArchivedEvent(msgspec.Struct, frozen=True):
    event_id: str  # hex
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
    engagement_ms: int
    country: str


# The ClickHouse structure of one line, in ArchivedEvent's field order.
STRUCTURE = (
    "event_id String, tenant_id String, site_id String, ts_ms Int64, name String, url String, "
    "referrer String, visitor_id UInt64, user_agent String, screen_width UInt32, "
    "props Map(String, String), engagement_ms UInt32, country String"
)

_encoder = msgspec.json.Encoder()


def archived(event: EventV1) -> ArchivedEvent:
    return ArchivedEvent(
        event_id=event.event_id.hex(),
        tenant_id=event.tenant_id,
        site_id=event.site_id,
        ts_ms=event.ts_ms,
        name=event.name,
        url=_kept_url(event.url),
        referrer=event.referrer,
        visitor_id=event.visitor_id,
        user_agent=event.user_agent,
        screen_width=event.screen_width,
        props=event.props,
        engagement_ms=event.engagement_ms,
        country=event.country,
    )


def encode_line(record: ArchivedEvent) -> bytes:
    return _encoder.encode(record)


def day_of(ts_ms: int) -> str:
    return datetime.fromtimestamp(ts_ms / 1000, UTC).date().isoformat()


def day_folder(root: Path, day: date) -> Path:
    return root / FOLDER / f"date={day.isoformat()}"


def day_glob(root: Path, day: date) -> str:
    return str(day_folder(root, day) / "*.jsonl.gz")


def _kept_url(url: str) -> str:
    try:
        parts = urlsplit(url)
    except ValueError:
        return url
    return urlunsplit((parts.scheme, parts.netloc, parts.path, tagged_query(parts.query), ""))
