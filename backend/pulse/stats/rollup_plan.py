"""Which checked stats queries the rollups of migration 0010 answer, and from which of their rows.

A query is answered from the rollups when that gives the raw path's figures (pulse.stats.compile),
distinct counts aside: visitors and visits there are uniqCombined estimates (within about 0.4% of
the exact count for a whole site, 1.2% by page, country and the like; exact for small counts),
and the result says so (`meta.approximate`).

Answered from the rollups:
- metrics visitors, visits, pageviews, events and views_per_visit: of the whole site, in total or
  by time bucket; or grouped by one dimension of `TRAFFIC_DIMENSIONS` (or `VISIT_DIMENSIONS`, with
  visitors and visits only), with or without a time bucket; filters only on that dimension, or,
  without one, all on one dimension (a filtered total or time series);
- the range's whole hours from hour rows and, where the buckets allow, its whole UTC days from
  day rows; minutes at either end from raw events (pulse.stats.rollup_compile);
- time buckets in timezones whose offset is whole hours over the range, so that every bucket is
  made of whole UTC hours (Asia/Kolkata is not); day rows only where the offset is 0 throughout;
- visit attributes: a visit is counted by its first event, in the hour it started, so a range
  must start at midnight UTC, where every visit ends (pulse.rollup.sessions): no visit started
  before the range then has events in it. Visits are not split into time buckets (the raw path
  counts a visit in every bucket it has events in). The raw path reads a visit's first event other
  than an engagement ping, and its first pageview for the entry page: a visit opened by an
  engagement ping (a tab shown again after half an hour) is not counted in the rollups, and one
  opened by a custom event has the entry page '' there;
- bounce rate and visit duration of the whole site (no filters) and exit pages: from the visits
  folded per UTC day (pulse.stats.visit_days) and, for the other days (today), each visit in the
  sessions table; over ranges from a midnight UTC, as visit attributes. A range ending before now
  in the middle of a UTC day (the previous period "to date" an overview compares with) counts the
  visits under way at its end whole, their later events included, where the raw path stops at
  its end: a few visits of a day's hundreds of thousands, and the result is marked approximate.
Everything else (bounce rate and visit duration with filters or dimensions, goals, properties, two
dimensions, minute buckets, ranges under an hour, hours past the hour rollups' 400 days, visits
over ranges from another time of day) is read from raw events.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, date, datetime, timedelta
from typing import Literal, NamedTuple
from zoneinfo import ZoneInfo

import msgspec

from pulse.stats.query import Metric, ValidQuery
from pulse.stats.ranges import Interval

# totals_* (the whole site), traffic_* and visits_* rows; visit_days and sessions by exit page;
# and the whole site's visit figures (with totals_* for visitors and pageviews).
Table = Literal["site", "traffic", "visits", "exits", "visit_figures"]
Grain = Literal["hour", "day", "raw"]

# Query dimension → the rollup rows' value, as the views of migration 0010 compute it from a row
# of `events`: the raw edges of a range compute it alike.
TRAFFIC_DIMENSIONS = {
    "page": "pathname",
    "hostname": "toString(hostname)",
    "country": "toString(country)",
    "device": "toString(device)",
    "browser": "toString(browser)",
    "browser_version": "toString(browser_version)",
    "os": "toString(os)",
    "os_version": "toString(os_version)",
    "event": "toString(name)",
}
VISIT_DIMENSIONS = {
    "referrer": "referrer",
    "source": "toString(source)",
    "channel": "toString(channel)",
    "utm_source": "toString(utm_source)",
    "utm_medium": "toString(utm_medium)",
    "utm_campaign": "toString(utm_campaign)",
    "utm_content": "utm_content",
    "utm_term": "utm_term",
    "entry_page": "if(name = 'pageview', pathname, '')",
}
TRAFFIC_METRICS: frozenset[Metric] = frozenset(
    {"visitors", "visits", "pageviews", "events", "views_per_visit"}
)
VISIT_METRICS: frozenset[Metric] = frozenset({"visitors", "visits"})
VISIT_FIGURES: frozenset[Metric] = frozenset({"bounce_rate", "visit_duration"})
EXIT_PAGE = "exit_page"
# Tables whose rows count a visit once, by its first day or event.
BY_VISIT = frozenset({"visits", "exits", "visit_figures"})
# A UTC day is folded once its last visits' events are in: visits end at midnight UTC.
SETTLED = timedelta(minutes=5)
# The hour rollups keep 400 days (migration 0010's TTL); a day less, for the hour under way.
HOUR_ROWS_KEPT = timedelta(days=399)
# When only the top rows of many values are asked for, the sketches of this many candidates (at
# least) are merged: the values with the largest upper bound of the ordering figure.
CANDIDATES = 20
# Dimensions with values enough (thousands) for that to pay: ranking first is one more query, and
# merging the sketches of a few dozen values costs less.
MANY_VALUES = frozenset({"page", "entry_page", EXIT_PAGE, "referrer", "utm_content", "utm_term"})
_HOUR = timedelta(hours=1)
_DAY = timedelta(days=1)


class Span(msgspec.Struct, frozen=True):
    """[start, end) read from hour rows, day rows, or raw events."""

    grain: Grain
    start: datetime
    end: datetime


class RollupPlan(msgspec.Struct, frozen=True):
    table: Table
    # The rows' dimension: the one grouped or filtered by; '' (every event) for neither.
    dimension: str
    spans: tuple[Span, ...]
    # Merge the sketches of the top `candidates` values by `bound` only (None: of every value).
    # `bound` sums to the first ordering figure or to more, never less, for every value.
    candidates: int | None = None
    bound: str = ""
    # Whether the first ordering figure is `bound` itself: the candidates are then certain.
    exact_bound: bool = False
    # Visits by day (exits, visit_figures): the UTC days of the range that are over, folded or to
    # fold, and the others, read visit by visit.
    closed: tuple[date, ...] = ()
    live: tuple[date, ...] = ()

    def unpruned(self) -> RollupPlan:
        return msgspec.structs.replace(self, candidates=None)


# What breakdowns read together from one table give (pulse.stats.rollup_compile.compile_together),
# after visitors.
TOGETHER_FIGURES: dict[Table, tuple[Metric, ...]] = {
    "traffic": ("pageviews", "events"),
    "visits": ("visits",),
}


class Planned(NamedTuple):
    # Its place among the queries of a batch.
    position: int
    query: ValidQuery
    plan: RollupPlan


def together(planned: Sequence[Planned]) -> list[list[Planned]]:
    """Groups of two or more breakdowns that one read of their table's hour and day rows answers:
    each by a dimension of its own, filtered on it only, visitors then TOGETHER_FIGURES, in the
    default order from the first row, without candidates (each merges every value's sketches)."""
    groups: dict[tuple[object, ...], list[Planned]] = {}
    for member in planned:
        query, found = member.query, member.plan
        if found.table not in TOGETHER_FIGURES or found.candidates is not None:
            continue
        if any(span.grain == "raw" for span in found.spans) or len(query.dimensions) != 1:
            continue
        (dimension,) = query.dimensions
        first, *rest = query.metrics
        if first != "visitors" or not set(rest) <= set(TOGETHER_FIGURES[found.table]):
            continue
        if query.offset != 0 or query.order != (("visitors", "desc"), (dimension.name, "asc")):
            continue
        group = groups.setdefault((found.table, found.spans), [])
        if all(m.plan.dimension != found.dimension for m in group):
            group.append(member)
    return [group for group in groups.values() if len(group) > 1]


def plan(query: ValidQuery, now: datetime) -> RollupPlan | None:
    times = [d for d in query.dimensions if d.kind == "time"]
    others = [d for d in query.dimensions if d.kind != "time"]
    if len(times) > 1 or len(others) > 1:
        return None
    filtered = {f.dimension.name for f in query.filters}
    if others:
        dimension = others[0].name
        if filtered - {dimension}:
            return None
    elif len(filtered) > 1:
        return None
    else:
        dimension = next(iter(filtered), "")
    if dimension == EXIT_PAGE:
        table: Table = "exits"
        allowed = VISIT_METRICS
    elif dimension == "":
        table = "site"
        allowed = TRAFFIC_METRICS
        if VISIT_FIGURES & set(query.metrics):
            table = "visit_figures"
            allowed = TRAFFIC_METRICS | VISIT_FIGURES
    elif dimension in TRAFFIC_DIMENSIONS:
        table = "traffic"
        allowed = TRAFFIC_METRICS
    elif dimension in VISIT_DIMENSIONS:
        table = "visits"
        allowed = VISIT_METRICS
    else:
        return None
    if not set(query.metrics) <= allowed:
        return None
    grain = times[0].key if times else None
    if grain == "minute":
        return None
    interval = query.interval
    if table in BY_VISIT and (times or not at_midnight_utc(interval.start)):
        return None
    offsets = _offsets(ZoneInfo(query.timezone), interval)
    if grain is not None and any(offset % _HOUR for offset in offsets):
        return None
    days = grain is None or (grain != "hour" and offsets == {timedelta(0)})
    spans = _spans(interval, days)
    if spans is None:
        return None
    if any(s.grain == "hour" and s.start < now - HOUR_ROWS_KEPT for s in spans):
        return None
    found = RollupPlan(table=table, dimension=dimension, spans=spans)
    if table in ("exits", "visit_figures"):
        found = _by_day(found, interval, now)
    return _pruned(found, query) if others else found


def _by_day(found: RollupPlan, interval: Interval, now: datetime) -> RollupPlan:
    closed, live = split_days(interval, now)
    return msgspec.structs.replace(found, closed=closed, live=live)


def split_days(interval: Interval, now: datetime) -> tuple[tuple[date, ...], tuple[date, ...]]:
    """The UTC days of an interval from a midnight UTC that are over (whole and settled), and the
    others begun by `now`."""
    closed: list[date] = []
    live: list[date] = []
    day = interval.start
    while day < min(interval.end, now):
        whole = day + _DAY <= interval.end
        (closed if whole and day + _DAY + SETTLED <= now else live).append(day.date())
        day += _DAY
    return tuple(closed), tuple(live)


def _pruned(found: RollupPlan, query: ValidQuery) -> RollupPlan:
    """Candidates when the rows are ordered by a figure with a known upper bound, largest first."""
    first, direction = query.order[0]
    if direction != "desc":
        return found
    if found.dimension not in MANY_VALUES:
        return found
    counted = "events" if found.table == "traffic" else "visits"
    if first == "visitors" or (first == "visits" and found.table == "traffic"):
        # Each visitor (visit) of a value has at least one event (is one visit) with it.
        bound, exact = counted, False
    elif first in ("pageviews", "events") or first == "visits":
        bound, exact = first, True
    else:
        return found
    wanted = query.offset + query.limit + 1
    return msgspec.structs.replace(
        found, candidates=max(CANDIDATES, 2 * wanted), bound=bound, exact_bound=exact
    )


def _spans(interval: Interval, days: bool) -> tuple[Span, ...] | None:
    start, end = interval.start, interval.end
    first_hour, last_hour = _ceil(start, _HOUR), _floor(end, _HOUR)
    if first_hour >= last_hour:
        # Under an hour: raw events are few, and read quickly.
        return None
    spans = [Span("raw", start, first_hour)] if start < first_hour else []
    first_day, last_day = _ceil(first_hour, _DAY), _floor(last_hour, _DAY)
    if days and first_day < last_day:
        if first_hour < first_day:
            spans.append(Span("hour", first_hour, first_day))
        spans.append(Span("day", first_day, last_day))
        if last_day < last_hour:
            spans.append(Span("hour", last_day, last_hour))
    else:
        spans.append(Span("hour", first_hour, last_hour))
    if last_hour < end:
        spans.append(Span("raw", last_hour, end))
    return tuple(spans)


def _offsets(tz: ZoneInfo, interval: Interval) -> set[timedelta]:
    """The timezone's UTC offsets over the interval, looked at twice a day and at both ends."""
    seen = set()
    at = interval.start
    while at < interval.end:
        seen.add(at.astimezone(tz).utcoffset() or timedelta(0))
        at += timedelta(hours=12)
    seen.add((interval.end - timedelta(microseconds=1)).astimezone(tz).utcoffset() or timedelta(0))
    return seen


def at_midnight_utc(at: datetime) -> bool:
    return _floor(at, _DAY) == at


def _floor(at: datetime, step: timedelta) -> datetime:
    epoch = datetime(1970, 1, 1, tzinfo=UTC)
    return epoch + (at - epoch) // step * step


def _ceil(at: datetime, step: timedelta) -> datetime:
    floor = _floor(at, step)
    return floor if floor == at else floor + step
