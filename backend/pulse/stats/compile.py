"""A checked stats query → one ScopedQuery over raw events, every value a bound parameter.

Names reach the SQL only through the tables below (dimension columns, metric expressions);
everything the client wrote (filter values, property keys, goal patterns, the timezone, the
range, limit and offset) is bound as a {pN:Type} parameter.

What the figures mean:
- The events are the site's events in [start, end) matching every filter, engagement pings
  excluded: they are not events, they only extend a visit's duration.
- A session's own figures come from all its events in the range, filtered or not: its
  pageviews, its duration (first to last event, engagement pings included), its entry and
  exit page (first and last pageview's path) and where it came from (its first event's
  referrer, source, channel and UTM tags). Filters on these keep or drop whole sessions, and
  every event of a session counts for them: the pages after the first came from the site
  itself, yet count for the search engine that brought the visit.
- The events are grouped by session and by the query's dimensions (the inner query), then
  folded into one row per group (the outer query). A session with events in two groups (two
  pages) is a visit of both.
    visitors         distinct visitors
    visits           sessions
    pageviews        pageview events; `events` counts every event
    views_per_visit  pageviews / visits
    bounce_rate      share of the visits whose session has at most one pageview (0 to 1)
    visit_duration   mean duration of the visits' sessions, in seconds
    conversion_rate  visitors who completed a counted goal (pulse.stats.conversions) /
                     visitors of the same group before goals narrowed it (0 to 1); with a
                     goal dimension or goal filter that denominator is a second grouping of
                     the same events without them, joined on the other dimensions
  A conversion belongs to the groups of the event that completed the goal: by page, a signup
  counts on the page it was sent from; by entry page or source, on the visit's.
- Time buckets start at the minute, hour, day, week (Monday) or month in the query's
  timezone; groups without events are absent, buckets are not filled in. A property the event
  does not have reads as "".
- Rows are ordered by the query's order (ties broken by every dimension, see pulse.stats.query),
  and one row more than the limit is fetched to tell whether there is a next page.
"""

from __future__ import annotations

import textwrap
from collections.abc import Sequence
from datetime import datetime
from typing import NamedTuple

import msgspec

from pulse.oltp.goals import Goal
from pulse.stats.conversions import completed_goals, counted_goals, uses_goals
from pulse.stats.query import SESSION_DIMENSIONS, Condition, Dimension, ValidQuery
from pulse.warehouse.reader import ScopedQuery

IN_RANGE = [
    "tenant_id = {tenant_id:String}",
    "site_id = {site_id:String}",
    "ts >= {start:DateTime64(3, 'UTC')}",
    "ts < {end:DateTime64(3, 'UTC')}",
]

# Epoch seconds of the bucket's start; pulse.stats.query_result writes it in the timezone.
TIME_BUCKETS = {
    "minute": "toUnixTimestamp(toStartOfMinute(ts, {timezone:String}))",
    "hour": "toUnixTimestamp(toStartOfHour(ts, {timezone:String}))",
    "day": "toUnixTimestamp(toStartOfDay(ts, {timezone:String}))",
    "week": "toUnixTimestamp(toDateTime(toMonday(ts, {timezone:String}), {timezone:String}))",
    "month": "toUnixTimestamp(toDateTime(toStartOfMonth(ts, {timezone:String}), {timezone:String}))",
}


# A session's attributes (pulse.stats.query.SESSION_DIMENSIONS) over its events in the range.
# Where it came from is its first event's: engagement pings are sent later and say nothing new.
_PAGES = {
    "entry_page": "argMinIf(pathname, ts, name = 'pageview')",
    "exit_page": "argMaxIf(pathname, ts, name = 'pageview')",
}
_SESSION_ATTRIBUTES = _PAGES | {
    column: f"argMinIf(toString({column}), ts, name != 'engagement')"
    for column in SESSION_DIMENSIONS
    if column not in _PAGES
}
# The event attributes that are also the visit's (pulse.stats.query.EVENT_DIMENSIONS): its first
# event's, which is every event's.
VISIT_CONSTANT = ("country", "device", "browser", "browser_version", "os", "os_version")
# A visit's attributes over its events, by column: what visit_rows holds (pulse.stats.visit_days).
VISIT_ATTRIBUTES = _SESSION_ATTRIBUTES | {
    column: f"argMinIf(toString({column}), ts, name != 'engagement')" for column in VISIT_CONSTANT
}


class _Metric(NamedTuple):
    # What it needs from the inner query (a row per session and group)...
    columns: tuple[str, ...]
    # ...and its expression over those rows in the outer query.
    expression: str


_VISITOR = "any(visitor_id) AS visitor"
_PAGEVIEWS = "countIf(name = 'pageview') AS group_pageviews"
# Read from the sessions join: the session's own pageviews and duration (in milliseconds: summed
# as integers, so the mean is the same whatever order the rows come in, as the rollups' is).
_SESSION_PAGEVIEWS = "any(s_pageviews) AS session_pageviews"
_SESSION_DURATION = "any(s_duration) AS session_duration"
_METRICS = {
    "visitors": _Metric((_VISITOR,), "uniqExact(visitor)"),
    "visits": _Metric((), "count()"),
    "pageviews": _Metric((_PAGEVIEWS,), "sum(group_pageviews)"),
    "events": _Metric(("count() AS group_events",), "sum(group_events)"),
    "views_per_visit": _Metric((_PAGEVIEWS,), "if(count() = 0, 0, round(sum(group_pageviews) / count(), 2))"),
    "bounce_rate": _Metric(
        (_SESSION_PAGEVIEWS,), "if(count() = 0, 0, round(countIf(session_pageviews <= 1) / count(), 4))"
    ),
    "visit_duration": _Metric(
        (_SESSION_DURATION,), "if(count() = 0, 0, round(sum(session_duration) / 1000 / count(), 1))"
    ),
}
# conversion_rate: converted visitors of the group over all its visitors, which are counted
# apart (in `totals`) when goals narrowed the group.
_CONVERTED = _Metric(
    (_VISITOR, "max(notEmpty(goals)) AS converted"), "uniqExactIf(visitor, converted) AS converted_visitors"
)
_ALL_VISITORS = "uniqExact(visitor) AS all_visitors"
_CONVERSION_RATE = "if(all_visitors = 0, 0, round(converted_visitors / all_visitors, 4)) AS conversion_rate"


class Compiled(msgspec.Struct, frozen=True):
    query: ScopedQuery
    params: dict[str, object]


class Binder:
    def __init__(self, site_id: str, start: datetime, end: datetime, timezone: str) -> None:
        self.params: dict[str, object] = {
            "site_id": site_id,
            "start": start,
            "end": end,
            "timezone": timezone,
        }

    def __call__(self, value: object, kind: str) -> str:
        name = f"p{len(self.params)}"
        self.params[name] = value
        return f"{{{name}:{kind}}}"


class _Grouping(msgspec.Struct, frozen=True):
    """One grouping of the events: the inner query (a row per session and group), folded."""

    dimensions: list[tuple[str, Dimension]]
    filters: list[Condition]
    # The inner query's columns besides session_id and the dimensions.
    columns: list[str]
    # The outer query's figures, as `expression AS name`.
    figures: list[str]
    # SQL over one event: the names of the counted goals it completes; "" when goals play no part.
    goals: str = ""
    # Only events that complete a counted goal (there are goal filters).
    converting_only: bool = False
    # Group by each dimension apart (GROUPING SETS) rather than by all of them together.
    apart: bool = False

    @property
    def by_session(self) -> bool:
        """Whether it reads the sessions' own figures (entry/exit page, pageviews, duration)."""
        return bool({_SESSION_PAGEVIEWS, _SESSION_DURATION} & set(self.columns)) or any(
            d.kind == "session"
            for d in [*(d for _, d in self.dimensions), *(f.dimension for f in self.filters)]
        )


def compile_query(query: ValidQuery, site_id: str, goals: Sequence[Goal]) -> Compiled:
    bind = Binder(site_id, query.interval.start, query.interval.end, query.timezone)
    aliased = [(f"dim_{i}", d) for i, d in enumerate(query.dimensions)]
    plain = [(alias, d) for alias, d in aliased if d.kind != "goal"]
    filters = [f for f in query.filters if f.dimension.kind != "goal"]
    goal_filtered = len(filters) < len(query.filters)
    # Goals narrow the events: conversion_rate's denominator is then counted apart, in `totals`.
    narrowed = goal_filtered or len(plain) < len(aliased)

    columns = [column for m in query.metrics if m in _METRICS for column in _METRICS[m].columns]
    figures = [f"{_METRICS[m].expression} AS {m}" for m in query.metrics if m in _METRICS]
    if "conversion_rate" in query.metrics:
        columns += _CONVERTED.columns
        figures += [_CONVERTED.expression] if narrowed else [_CONVERTED.expression, _ALL_VISITORS]
    main = _Grouping(
        dimensions=aliased,
        filters=filters,
        columns=list(dict.fromkeys(columns)),
        figures=figures,
        goals=completed_goals(counted_goals(query, goals), bind) if uses_goals(query) else "",
        converting_only=goal_filtered,
    )
    source = f"(\n{_render(main, bind)}\n) AS grouped"
    if "conversion_rate" in query.metrics and narrowed:
        totals = _Grouping(dimensions=plain, filters=filters, columns=[_VISITOR], figures=[_ALL_VISITORS])
        joined = f"(\n{_render(totals, bind)}\n) AS totals"
        if plain:
            source += f"\nLEFT JOIN {joined} USING ({', '.join(alias for alias, _ in plain)})"
        else:
            source += f"\nCROSS JOIN {joined}"

    selected = [alias for alias, _ in aliased]
    selected += [_CONVERSION_RATE if m == "conversion_rate" else m for m in query.metrics]
    aliases = {d.name: alias for alias, d in aliased}
    order = [f"{aliases.get(name, name)} {direction.upper()}" for name, direction in query.order]
    sql = f"""SELECT
    {_list(selected, 4)}
FROM {source}
ORDER BY {", ".join(order)}
LIMIT {bind(query.limit + 1, "UInt32")} OFFSET {bind(query.offset, "UInt64")}"""  # noqa: S608 - names from the tables above, values bound
    return Compiled(query=ScopedQuery("stats_query", sql), params=bind.params)


def compile_breakdowns(
    dimensions: Sequence[Dimension], no_empty: Sequence[int], query: ValidQuery, site_id: str
) -> Compiled:
    """Visitors, and visits or pageviews, by each of several attributes, in one pass.

    Each breakdown reads as compile_query's would for `query` with that one dimension and the
    metrics visitors and visits (session attributes) or visitors and pageviews (event
    attributes), ordered by visitors (descending) then value, `query.limit` + 1 rows. The inner
    query keeps one row per session and combination of the attributes, and the outer one groups
    those rows by each attribute apart: visitors are the same distinct visitors, pageviews add up
    to the same sums, and as a session has one value of each of its own attributes, its rows count
    its visits. Apart, every breakdown would fold every session of the range (or scan its events)
    again. Breakdowns named in `no_empty` leave out the value "" (as a filter `is_not [""]` on
    their own attribute would). `query`'s filters hold for all, goal filters excepted
    (compile_query answers those). A row: breakdown index, value, visitors, visits or pageviews.
    """
    kinds = {d.kind for d in dimensions}
    if kinds not in ({"session"}, {"event"}) or any(f.dimension.kind == "goal" for f in query.filters):
        raise ValueError("only breakdowns by attributes of one kind, without goal filters, are read together")
    bind = Binder(site_id, query.interval.start, query.interval.end, query.timezone)
    aliased = [(f"dim_{i}", d) for i, d in enumerate(dimensions)]
    extra = "count()" if kinds == {"session"} else "sum(group_pageviews)"
    grouping = _Grouping(
        dimensions=aliased,
        filters=list(query.filters),
        columns=[_VISITOR] if kinds == {"session"} else [_VISITOR, _PAGEVIEWS],
        figures=[
            breakdown_index([alias for alias, _ in aliased]),
            "uniqExact(visitor) AS visitors",
            f"{extra} AS extra",
        ],
        apart=True,
    )
    sql = apart_rows(
        [alias for alias, _ in aliased], _render(grouping, bind), ["extra"], no_empty, query, bind
    )
    return Compiled(query=ScopedQuery("stats_breakdowns", sql), params=bind.params)


def breakdown_index(aliases: Sequence[str]) -> str:
    """A GROUPING SETS query's figure `breakdown`: the index of the alias its row is grouped by."""
    which = ", ".join(f"grouping({alias}) = 0, {i}" for i, alias in enumerate(aliases[:-1]))
    return f"multiIf({which}, {len(aliases) - 1}) AS breakdown" if which else "0 AS breakdown"


def apart_rows(
    aliases: Sequence[str],
    grouped: str,
    figures: Sequence[str],
    no_empty: Sequence[int],
    query: ValidQuery,
    bind: Binder,
) -> str:
    """The rows of `grouped`, a GROUPING SETS query by each of `aliases` apart with the figures
    breakdown (breakdown_index), visitors and `figures`: breakdown, value, visitors, `figures`, the
    top `query.limit` + 1 rows of each breakdown by visitors, those in `no_empty` without the value ''."""
    value = ", ".join(f"breakdown = {i}, toString({alias})" for i, alias in enumerate(aliases[:-1]))
    return f"""SELECT
    breakdown,
    {f"multiIf({value}, toString({aliases[-1]}))" if value else f"toString({aliases[-1]})"} AS value,
    {_list(["visitors", *figures], 4)}
FROM (
{grouped}
) AS grouped
WHERE NOT (has({bind(list(no_empty), "Array(UInt8)")}, breakdown) AND value = '')
ORDER BY breakdown ASC, visitors DESC, value ASC
LIMIT {bind(query.limit + 1, "UInt32")} BY breakdown"""  # noqa: S608 - names from the tables above, values bound


def _render(g: _Grouping, bind: Binder) -> str:
    aliases = [alias for alias, _ in g.dimensions]
    per_session = [
        "session_id",
        *(f"{_expression(d, bind)} AS {alias}" for alias, d in g.dimensions),
        *g.columns,
    ]
    where = [*IN_RANGE, "name != 'engagement'"]
    where += [
        condition(_expression(f.dimension, bind), f, bind) for f in g.filters if f.dimension.kind != "session"
    ]
    if g.converting_only:
        where.append("notEmpty(goals)")
    joins = ""
    if any(d.kind == "goal" for _, d in g.dimensions):
        joins += "\n    ARRAY JOIN goals AS goal"
    if g.by_session:
        session_filters = [f for f in g.filters if f.dimension.kind == "session"]
        read = [d for _, d in g.dimensions] + [f.dimension for f in session_filters]
        attributes = list(dict.fromkeys(d.key for d in read if d.kind == "session"))
        having = [condition(_expression(f.dimension, bind), f, bind) for f in session_filters]
        joins += f"\n    INNER JOIN {_sessions(attributes, having)} USING (session_id)"
    with_goals = f"WITH {g.goals} AS goals\n    " if g.goals else ""
    if g.apart:
        group_by = f"\nGROUP BY GROUPING SETS ({', '.join(f'({alias})' for alias in aliases)})"
    else:
        group_by = f"\nGROUP BY {', '.join(aliases)}" if aliases else ""
    return textwrap.indent(
        f"""SELECT
    {_list([*aliases, *g.figures], 4)}
FROM (
    {with_goals}SELECT
        {_list(per_session, 8)}
    FROM {{db:Identifier}}.events{joins}
    WHERE {_list(where, 6, " AND ")}
    GROUP BY {", ".join(["session_id", *aliases])}
){group_by}""",  # noqa: S608 - names from the tables above, values bound
        "    ",
    )


def _sessions(attributes: list[str], having: list[str]) -> str:
    """Each session's own figures, from all its events in the range; `having` keeps whole sessions."""
    columns = [
        "session_id",
        "countIf(name = 'pageview') AS s_pageviews",
        "dateDiff('millisecond', min(ts), max(ts)) AS s_duration",
        *(f"{_SESSION_ATTRIBUTES[name]} AS s_{name}" for name in attributes),
    ]
    kept = f"\n        HAVING {_list(having, 10, ' AND ')}" if having else ""
    return f"""(
        SELECT
            {_list(columns, 12)}
        FROM {{db:Identifier}}.events
        WHERE {_list(IN_RANGE, 10, " AND ")}
        GROUP BY session_id{kept}
    ) AS sessions"""  # noqa: S608 - names from the tables above, `having` holds bound placeholders only


def _expression(d: Dimension, bind: Binder) -> str:
    """The dimension's value for one event row (session attributes come from the sessions join)."""
    if d.kind == "event":
        return d.key
    if d.kind == "session":
        return f"s_{d.key}"
    if d.kind == "time":
        return TIME_BUCKETS[d.key]
    if d.kind == "prop":
        return f"props[{bind(d.key, 'String')}]"
    return "goal"


def condition(expression: str, f: Condition, bind: Binder) -> str:
    values = list(f.values)
    if f.op == "is":
        return f"{expression} IN {bind(values, 'Array(String)')}"
    if f.op == "is_not":
        return f"{expression} NOT IN {bind(values, 'Array(String)')}"
    # Not multiSearchAny: it finds no empty needle in an empty string, which position() does.
    test = "position({}, {}) > 0" if f.op == "contains" else "match({}, {})"
    return "(" + " OR ".join(test.format(expression, bind(v, "String")) for v in values) + ")"


def _list(items: Sequence[str], indent: int, separator: str = ",") -> str:
    if separator == ",":
        return (",\n" + " " * indent).join(items)
    return ("\n" + " " * indent + separator.lstrip()).join(items)
