"""Which checked stats queries visits as rows answer (migration 0012's visit_rows), and from which days.

The rollups (pulse.stats.rollup_plan) are asked first: what they answer costs less. What they leave
to raw events because of a filter (a filtered overview: its cards, its breakdowns by where visits
came from, entered and left, and by device, browser or OS) costs the raw path a fold of every
session of the range for each query. Read from visit rows instead, when:
- the metrics are of VISIT_METRICS: visitors, visits, pageviews, events, views per visit, bounce
  rate and visit duration;
- there is at most one dimension and it is a visit's (pulse.stats.compile.VISIT_ATTRIBUTES: where
  it came from, its entry and exit page, its country, device, browser and OS) or the page, and
  every filter is on such a dimension; no time buckets. Pages are each visit's list of the paths it
  has events on, with their pageviews and events;
- or, from each visit's pages and its list of custom events (path and name): visitors, visits,
  completions (events) and conversion rate by goal, with filters as above (no goal filters). By
  event name, raw events cost less: their sort key skips the pageviews;
- the range starts at a midnight UTC, where every visit ends (pulse.rollup.sessions): no visit
  begun before the range then has events in it, and each visit of the range is whole in it but
  for the one under way where the range ends, which the raw part reads up to that end.
The range's past UTC days come from their folds (pulse.stats.visit_days), the others from raw
events folded as they are read (pulse.stats.visit_compile). The figures are the raw path's exactly:
both count a visit's country, device, browser and OS as its events', which do not change within
a visit (pulse.stats.query.EVENT_DIMENSIONS).
"""

from __future__ import annotations

from datetime import date, datetime

import msgspec

from pulse.stats.compile import VISIT_ATTRIBUTES
from pulse.stats.query import Dimension, Metric, ValidQuery
from pulse.stats.rollup_plan import at_midnight_utc, split_days

VISIT_METRICS: frozenset[Metric] = frozenset(
    {"visitors", "visits", "pageviews", "events", "views_per_visit", "bounce_rate", "visit_duration"}
)

# By goal: what a visit's pages and custom events give.
GOAL_METRICS: frozenset[Metric] = frozenset({"visitors", "visits", "events", "conversion_rate"})


class VisitPlan(msgspec.Struct, frozen=True):
    # The range's UTC days that are over: read from their folds where they have one.
    closed: tuple[date, ...]
    # The range goes on to now: today's visits that are over may be read from their live folds
    # (pulse.stats.live_visits), which hold whole visits up to a cutoff before now.
    reaches_now: bool = False


def visit_plan(query: ValidQuery, now: datetime) -> VisitPlan | None:
    if len(query.dimensions) > 1:
        return None
    if query.dimensions and query.dimensions[0].kind == "goal":
        if not set(query.metrics) <= GOAL_METRICS:
            return None
        filtered = [f.dimension for f in query.filters]
    elif set(query.metrics) <= VISIT_METRICS:
        filtered = [*query.dimensions, *(f.dimension for f in query.filters)]
    else:
        return None
    if not all(_of_visit(d) for d in filtered):
        return None
    if not at_midnight_utc(query.interval.start):
        return None
    closed, _ = split_days(query.interval, now)
    return VisitPlan(closed=closed, reaches_now=query.interval.end >= now)


def _of_visit(d: Dimension) -> bool:
    return d.name == "page" or (d.kind in ("session", "event") and d.key in VISIT_ATTRIBUTES)
