"""A query that visits as rows answer (pulse.stats.visit_plan) → one ScopedQuery, values bound.

The visits of the range are a union: the rows of its folded days (visit_rows, pulse.stats.visit_days)
and, for its other days, raw events in the range folded by session into the same columns. The
filters then keep or drop whole visits, and the figures are folded from the visits kept, as the raw
path's outer query folds its sessions (pulse.stats.compile):
    visitors         distinct visitors of the visits
    visits           visits with an event other than engagement pings (events > 0)
    pageviews        their pageviews; `events` their events
    views_per_visit  pageviews / visits
    bounce_rate      share of the visits with at most one pageview (0 to 1)
    visit_duration   mean duration of the visits, first to last event, in seconds
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import date

from pulse.oltp.goals import Goal
from pulse.stats.compile import (
    IN_RANGE,
    Binder,
    Compiled,
    apart_rows,
    breakdown_index,
    condition,
)
from pulse.stats.conversions import like_pattern
from pulse.stats.live_visits import LiveCut
from pulse.stats.query import Condition, Dimension, Metric, ValidQuery
from pulse.stats.visit_rows import folded
from pulse.warehouse.reader import ScopedQuery

_SCOPE = "tenant_id = {tenant_id:String} AND site_id = {site_id:String}"
_METRICS: dict[Metric, tuple[tuple[str, ...], str]] = {
    # (visit columns read, expression over the visits kept); g_pageviews and g_events are the
    # pageviews and events of the pages asked for (_kept), v_pageviews the visit's own.
    "visitors": (("visitor_id",), "uniqExact(v_visitor_id)"),
    "visits": ((), "count()"),
    "pageviews": ((), "sum(g_pageviews)"),
    "events": ((), "sum(g_events)"),
    "views_per_visit": ((), "if(count() = 0, 0, round(sum(g_pageviews) / count(), 2))"),
    "bounce_rate": ((), "if(count() = 0, 0, round(countIf(v_pageviews <= 1) / count(), 4))"),
    "visit_duration": (("duration_ms",), "if(count() = 0, 0, round(sum(v_duration_ms) / 1000 / count(), 1))"),
}
_PAGES = ("pages", "page_views", "page_events")
# What a breakdown read together with others reads (pulse.stats.breakdowns), after visitors.
TOGETHER_FIGURES: tuple[Metric, ...] = ("visits", "pageviews")


def compile_visits(
    query: ValidQuery, site_id: str, folds: Mapping[date, int], live: LiveCut | None = None
) -> Compiled:
    """`folds`: the range's closed days whose fold is in use, by version; `live`: today's visits
    folded so far (pulse.stats.live_visits), when the range reaches now."""
    bind = Binder(site_id, query.interval.start, query.interval.end, query.timezone)
    aliased = [(f"dim_{i}", d) for i, d in enumerate(query.dimensions)]
    figures = [f"{_METRICS[m][1]} AS {m}" for m in query.metrics]
    read = [c for m in query.metrics for c in _METRICS[m][0]]
    selected = [f"v_{d.key} AS {alias}" for alias, d in aliased] + figures
    aliases = {d.name: alias for alias, d in aliased}
    order = [f"{aliases.get(name, name)} {direction.upper()}" for name, direction in query.order]
    group_by = f"\nGROUP BY {', '.join(alias for alias, _ in aliased)}" if aliased else ""
    sql = f"""SELECT
    {", ".join(selected)}
FROM {_kept(query, [*(d for _, d in aliased)], read, folds, live, bind)}{group_by}
ORDER BY {", ".join(order)}
LIMIT {bind(query.limit + 1, "UInt32")} OFFSET {bind(query.offset, "UInt64")}"""  # noqa: S608 - names from the tables above, values bound
    return Compiled(query=ScopedQuery("stats_visits", sql), params=bind.params)


def compile_goals(
    query: ValidQuery,
    site_id: str,
    folds: Mapping[date, int],
    goals: Sequence[Goal],
    live: LiveCut | None = None,
) -> Compiled:
    """By goal (pulse.stats.visit_plan), from each visit's pages and custom events as the raw path
    reads the events themselves: a visit that completes a goal is a visit of it, and its completions
    count, on the pages the filters keep. Conversion rate: the goal's visitors over every visitor of
    the visits the filters keep, counted in the same pass as the group ''. `goals`: the counted goals
    (pulse.stats.conversions.counted_goals)."""
    bind = Binder(site_id, query.interval.start, query.interval.end, query.timezone)
    on_pages = [f for f in query.filters if f.dimension.name == "page"]
    counted = ", ".join(
        f"({bind(goal.name, 'String')}, {_completions(goal, on_pages, bind)})" for goal in goals
    )
    groups = f"[{counted}]" if goals else "CAST([], 'Array(Tuple(String, UInt64))')"
    visits = _kept(query, [], ["visitor_id", "pages", "page_views", "custom_events"], folds, live, bind)
    figures = {
        "visitors": "visitors",
        "visits": "visits",
        "events": "events",
        "conversion_rate": "if(all_visitors = 0, 0, round(visitors / all_visitors, 4))",
    }
    order = [f"{'dim_0' if name == 'goal' else name} {direction.upper()}" for name, direction in query.order]
    sql = f"""SELECT
    dim_0, {", ".join(f"{figures[m]} AS {m}" for m in query.metrics)}
FROM (
    SELECT dim_0, visitors, visits, events, max(if(dim_0 = '', visitors, 0)) OVER () AS all_visitors
    FROM (
        SELECT group.1 AS dim_0, uniqExact(v_visitor_id) AS visitors, count() AS visits, sum(group.2) AS events
        FROM {visits}
        ARRAY JOIN arrayConcat([('', toUInt64(0))], arrayFilter(g -> g.2 > 0, {groups})) AS group
        GROUP BY dim_0
    )
)
WHERE dim_0 != ''
ORDER BY {", ".join(order)}
LIMIT {bind(query.limit + 1, "UInt32")} OFFSET {bind(query.offset, "UInt64")}"""  # noqa: S608 - names from the tables above, values bound
    return Compiled(query=ScopedQuery("stats_visit_goals", sql), params=bind.params)


def _completions(goal: Goal, on_pages: Sequence[Condition], bind: Binder) -> str:
    """A visit's completions of the goal on the pages the filters keep, as
    pulse.stats.conversions.completed_goals counts events: pageviews of a matching path, or events
    of the goal's name."""
    if goal.kind == "page":
        test = " AND ".join(
            [
                *(condition("p", f, bind) for f in on_pages),
                f"p LIKE {bind(like_pattern(goal.pattern), 'String')}",
            ]
        )
        return f"arraySum(arrayFilter((n, p) -> {test}, v_page_views, v_pages))"
    test = " AND ".join(
        [*(condition("e.1", f, bind) for f in on_pages), f"e.2 = {bind(goal.pattern, 'String')}"]
    )
    return f"toUInt64(arrayCount(e -> {test}, v_custom_events))"


def compile_visit_breakdowns(
    dimensions: Sequence[Dimension],
    no_empty: Sequence[int],
    query: ValidQuery,
    site_id: str,
    folds: Mapping[date, int],
    live: LiveCut | None = None,
) -> Compiled:
    """Visitors, visits and pageviews by each of several visit attributes, in one pass over the
    visits; rows as pulse.stats.compile.apart_rows gives them (figures visits, pageviews)."""
    bind = Binder(site_id, query.interval.start, query.interval.end, query.timezone)
    aliases = [f"dim_{i}" for i in range(len(dimensions))]
    figures = [
        breakdown_index(aliases),
        "uniqExact(v_visitor_id) AS visitors",
        *(f"{_METRICS[m][1]} AS {m}" for m in TOGETHER_FIGURES),
    ]
    grouped = f"""SELECT
    {", ".join([*(f"v_{d.key} AS {alias}" for alias, d in zip(aliases, dimensions, strict=True)), *figures])}
FROM {_kept(query, list(dimensions), ["visitor_id"], folds, live, bind)}
GROUP BY GROUPING SETS ({", ".join(f"({alias})" for alias in aliases)})"""  # noqa: S608 - names from the tables above, values bound
    sql = apart_rows(aliases, grouped, TOGETHER_FIGURES, no_empty, query, bind)
    return Compiled(query=ScopedQuery("stats_visit_breakdowns", sql), params=bind.params)


def _kept(
    query: ValidQuery,
    dimensions: list[Dimension],
    read: list[str],
    folds: Mapping[date, int],
    live: LiveCut | None,
    bind: Binder,
) -> str:
    """The range's visits with the columns asked for, as a FROM source, less those the filters drop.

    By page, a visit is a row per page it has events on (ARRAY JOIN), as the raw path groups a
    session's events by page; filtered by page, only visits with an event on a page the filters keep
    remain. Either way its pageviews and events (g_pageviews, g_events) are those of the pages kept,
    and its bounce and duration its own."""
    on_pages = [f for f in query.filters if f.dimension.name == "page"]
    by_page = any(d.name == "page" for d in dimensions)
    attributes = [d.key for d in [*dimensions, *(f.dimension for f in query.filters)] if d.name != "page"]
    pages = list(_PAGES) if on_pages or by_page else []
    columns = list(dict.fromkeys(["events", "pageviews", *read, *attributes, *pages]))
    # Named apart from the figures' aliases (`sum(g_pageviews) AS pageviews`).
    named = ", ".join(f"{c} AS v_{c}" for c in columns)
    days = bind(list(folds), "Array(Date)")
    parts = []
    if folds:
        parts.append(f"""SELECT {named}
        FROM {{db:Identifier}}.visit_rows FINAL
        WHERE {_SCOPE} AND day IN {days}
            AND version = transform(day, {days}, {bind(list(folds.values()), "Array(UInt64)")}, toUInt64(0))""")  # noqa: S608
    raw = [*IN_RANGE, f"toDate(ts) NOT IN {days}"]
    if live is not None:
        today = bind(live.day, "Date")
        parts.append(f"""SELECT {named}
        FROM {{db:Identifier}}.visit_rows_live FINAL
        WHERE {_SCOPE} AND day = {today} AND generation = {bind(live.generation, "UInt64")}
            AND cutoff <= {bind(live.cutoff, "DateTime64(3, 'UTC')")}""")  # noqa: S608
        # Today's other visits: those with an event since the folded ones ended.
        raw.append(f"""(toDate(ts) != {today} OR session_id IN (
                SELECT session_id FROM {{db:Identifier}}.events
                WHERE {_SCOPE} AND toDate(ts) = {today} AND ts >= {bind(live.settled, "DateTime64(3, 'UTC')")}
            ))""")  # noqa: S608
    # The other days' visits: in the range, which ends where the raw path's does.
    parts.append(f"""SELECT {named}
        FROM (
            SELECT {", ".join(folded(columns))}
            FROM {{db:Identifier}}.events
            WHERE {" AND ".join(raw)}
            GROUP BY session_id
        )""")  # noqa: S608
    kept = [
        "v_events > 0",
        *(condition(f"v_{f.dimension.key}", f, bind) for f in query.filters if f not in on_pages),
    ]
    joined = ""
    figures = "v_pageviews AS g_pageviews, v_events AS g_events"
    if by_page:
        joined = (
            "\n    ARRAY JOIN v_pages AS v_pathname, v_page_views AS g_pageviews, v_page_events AS g_events"
        )
        kept += [condition("v_pathname", f, bind) for f in on_pages]
        # Not in `*`: ARRAY JOIN's names are aliases.
        figures = "v_pathname, g_pageviews, g_events"
    elif on_pages:
        test = " AND ".join(condition("p", f, bind) for f in on_pages)
        kept.append(f"arrayExists(p -> {test}, v_pages)")
        figures = ", ".join(
            f"arraySum(arrayFilter((n, p) -> {test}, v_{column}, v_pages)) AS g_{figure}"
            for column, figure in (("page_views", "pageviews"), ("page_events", "events"))
        )
    union = "\n        UNION ALL\n        ".join(parts)
    return f"""(
    SELECT *, {figures}
    FROM (
        {union}
    ) AS visits{joined}
    WHERE {" AND ".join(kept)}
) AS kept"""  # noqa: S608 - names from the tables above, values bound
