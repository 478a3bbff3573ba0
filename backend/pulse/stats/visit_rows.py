"""A visit as one row: its figures and attributes over its events (migration 0012's visit_rows).

The stats engine folds each past UTC day's visits into visit_rows once (pulse.stats.visit_days);
days not folded (today, or the part of a day a range ends in) are folded from raw events when
read, into the same columns (pulse.stats.visit_compile).
"""

from __future__ import annotations

from pulse.stats.compile import VISIT_ATTRIBUTES

# A visit's own figures over all its events: a visit made of engagement pings only has events 0.
FIGURES = {
    "visitor_id": "any(visitor_id)",
    "pageviews": "countIf(name = 'pageview')",
    "events": "countIf(name != 'engagement')",
    "engagement_ms": "sum(engagement_ms)",
    "duration_ms": "toUInt64(dateDiff('millisecond', min(ts), max(ts)))",
}


def folded(columns: list[str]) -> list[str]:
    """`expression AS column` over a visit's events (grouped by session), for FIGURES and
    VISIT_ATTRIBUTES columns."""
    return [f"{(FIGURES | VISIT_ATTRIBUTES)[column]} AS {column}" for column in columns]
