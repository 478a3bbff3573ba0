"""What a stats query answers: one row per group, and how to read and page through them."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Annotated, Any
from zoneinfo import ZoneInfo

import msgspec

from pulse.stats.query import ValidQuery

# Integer counts; the other metrics are shares (0 to 1), ratios or seconds.
_COUNTS = frozenset({"visitors", "visits", "pageviews", "events"})
_WHOLE_DAYS = frozenset({"day", "week", "month"})


class ResultRow(msgspec.Struct, frozen=True):
    dimensions: Annotated[
        list[str],
        msgspec.Meta(
            description="The group's values, in the query's order. Time buckets: their start, "
            "an RFC 3339 datetime in the query's timezone (minute, hour) or a date (day, week, month)."
        ),
    ]
    metrics: Annotated[list[int | float], msgspec.Meta(description="The figures, in the query's order.")]


class ResultMeta(msgspec.Struct, frozen=True):
    metrics: list[str]
    dimensions: list[str]
    has_more: bool
    next_offset: Annotated[
        int | None, msgspec.Meta(description="The offset of the next page; null on the last.")
    ]
    timezone: str
    start: Annotated[
        str, msgspec.Meta(description="Start of the range, included, in the query's timezone.")
    ] = msgspec.field(name="from")
    end: Annotated[str, msgspec.Meta(description="End of the range, excluded.")] = msgspec.field(name="to")
    approximate: Annotated[
        bool,
        msgspec.Meta(
            description="Whether visitors and visits are estimates (within about 1%, exact for small "
            "counts), read from rollups rather than counted in raw events."
        ),
    ] = False


class QueryResult(msgspec.Struct, frozen=True):
    results: list[ResultRow]
    meta: ResultMeta


def shape(query: ValidQuery, rows: Sequence[Sequence[Any]], approximate: bool = False) -> QueryResult:
    tz = ZoneInfo(query.timezone)
    has_more = len(rows) > query.limit
    width = len(query.dimensions)
    results = [
        ResultRow(
            dimensions=[
                _bucket(value, d.key, tz) if d.kind == "time" else str(value)
                for d, value in zip(query.dimensions, row[:width], strict=True)
            ],
            metrics=[
                int(value) if metric in _COUNTS else float(value)
                for metric, value in zip(query.metrics, row[width:], strict=True)
            ],
        )
        for row in rows[: query.limit]
    ]
    return QueryResult(
        results=results,
        meta=ResultMeta(
            metrics=list(query.metrics),
            dimensions=[d.name for d in query.dimensions],
            has_more=has_more,
            next_offset=query.offset + query.limit if has_more else None,
            timezone=query.timezone,
            start=query.interval.start.astimezone(tz).isoformat(),
            end=query.interval.end.astimezone(tz).isoformat(),
            approximate=approximate,
        ),
    )


def _bucket(epoch_s: int, grain: str, tz: ZoneInfo) -> str:
    start = datetime.fromtimestamp(int(epoch_s), UTC).astimezone(tz)
    return start.date().isoformat() if grain in _WHOLE_DAYS else start.isoformat()
