"""A visit as one row: its figures and attributes over its events (migration 0012's visit_rows).

The stats engine folds each past UTC day's visits into visit_rows once (pulse.stats.visit_days);
days not folded (today, or the part of a day a range ends in) are folded from raw events when
read, into the same columns (pulse.stats.visit_compile).
"""

from __future__ import annotations

from pulse.stats.compile import VISIT_ATTRIBUTES

# Per path of the visit's events, their number, or of pageviews (a map keeps the paths counted 0).
_EVENTS_BY_PAGE = "sumMapIf(map(pathname, toUInt64(1)), name != 'engagement')"
_PAGEVIEWS_BY_PAGE = "sumMapIf(map(pathname, toUInt64(name = 'pageview')), name != 'engagement')"
# A visit's own figures over all its events: a visit made of engagement pings only has events 0.
FIGURES = {
    "visitor_id": "any(visitor_id)",
    "pageviews": "countIf(name = 'pageview')",
    "events": "countIf(name != 'engagement')",
    "engagement_ms": "sum(engagement_ms)",
    "duration_ms": "toUInt64(dateDiff('millisecond', min(ts), max(ts)))",
    # Each path it has events on (but engagement pings), sorted, with their pageviews and events.
    "pages": f"mapKeys({_EVENTS_BY_PAGE})",
    "page_views": f"mapValues({_PAGEVIEWS_BY_PAGE})",
    "page_events": f"mapValues({_EVENTS_BY_PAGE})",
    # Each of its custom events (not pageviews nor engagement pings) as (path, name): goals read them.
    "custom_events": "groupArrayIf((pathname, toString(name)), name NOT IN ('pageview', 'engagement'))",
}


def folded(columns: list[str]) -> list[str]:
    """`expression AS column` over a visit's events (grouped by session), for FIGURES and
    VISIT_ATTRIBUTES columns."""
    return [f"{(FIGURES | VISIT_ATTRIBUTES)[column]} AS {column}" for column in columns]
