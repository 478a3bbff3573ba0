"""A visit as one row: its figures and attributes over its events (migration 0012's visit_rows).

The stats engine folds each past UTC day's visits into visit_rows once (pulse.stats.visit_days);
days not folded (today, or the part of a day a range ends in) are folded from raw events when
read, into the same columns (pulse.stats.visit_compile).
"""

from __future__ import annotations

from pulse.stats.compile import VISIT_ATTRIBUTES, VISIT_CONSTANT

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
    "pages": f"arrayMap(p -> toLowCardinality(p), mapKeys({_EVENTS_BY_PAGE}))",
    "page_views": f"mapValues({_PAGEVIEWS_BY_PAGE})",
    "page_events": f"mapValues({_EVENTS_BY_PAGE})",
    # Each of its custom events (not pageviews nor engagement pings) as (path, name): goals read them.
    "custom_events": "groupArrayIf((pathname, name), name NOT IN ('pageview', 'engagement'))",
}
# visit_rows' LowCardinality columns. Visits folded as they are read take the same types: a union
# with the folded days' rows would otherwise make every row plain strings, slower to group by.
_LOW_CARDINALITY = frozenset(
    {
        "entry_page",
        "exit_page",
        "source",
        "channel",
        "utm_source",
        "utm_medium",
        "utm_campaign",
        *VISIT_CONSTANT,
    }
)


# A visit row's columns after its session_id, in the order the folds write them.
ROW_COLUMNS = [*FIGURES, *VISIT_ATTRIBUTES]


def folded(columns: list[str]) -> list[str]:
    """`expression AS column` over a visit's events (grouped by session), for FIGURES and
    VISIT_ATTRIBUTES columns."""
    expressions = FIGURES | {
        column: f"toLowCardinality({found})" if column in _LOW_CARDINALITY else found
        for column, found in VISIT_ATTRIBUTES.items()
    }
    return [f"{expressions[column]} AS {column}" for column in columns]
