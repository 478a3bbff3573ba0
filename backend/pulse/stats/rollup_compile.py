"""A rollup plan (pulse.stats.rollup_plan) → ScopedQuerys answering as the raw path's would.

The plan's rows (hour rows, day rows, raw events at minute edges folded into the same sketches;
for visits by day, folded days and the other days' visits) are unioned, the filters applied to
their value, then grouped by the query's dimensions: the columns, their order, ORDER BY and LIMIT
are the raw path's (pulse.stats.compile), so pulse.stats.query_result shapes either alike.

With candidates, `compile_ranking` first ranks every value by the plan's bound (cheap sums), and
`compile_rollup` merges the sketches of the top ones only (`only`): the key's index then skips the
other values' rows. `certain` tells whether a value left out could have ranked among the rows
asked for; the caller then asks again without candidates.
"""

from __future__ import annotations

import textwrap
from collections.abc import Mapping, Sequence
from datetime import date
from typing import Any

from pulse.stats.compile import Binder, Compiled, condition
from pulse.stats.query import Metric, ValidQuery
from pulse.stats.rollup_plan import (
    TOGETHER_FIGURES,
    TRAFFIC_DIMENSIONS,
    VISIT_DIMENSIONS,
    Planned,
    RollupPlan,
    Span,
    Table,
)
from pulse.warehouse.reader import ScopedQuery

# The sketches of migration 0010: the whole site's (totals_*), and every other's.
SITE_SKETCH = "uniqCombined(16)"
SKETCH = "uniqCombined(13)"
# A left-out value's bound must be this much under the last needed figure: an estimate may be
# that much over the exact count the raw path would rank by.
MARGIN = 0.95

_SCOPE = "tenant_id = {tenant_id:String} AND site_id = {site_id:String}"
_TIME = {
    "hour": "toUnixTimestamp(toStartOfHour(t, {timezone:String}))",
    "day": "toUnixTimestamp(toStartOfDay(t, {timezone:String}))",
    "week": "toUnixTimestamp(toDateTime(toMonday(t, {timezone:String}), {timezone:String}))",
    "month": "toUnixTimestamp(toDateTime(toStartOfMonth(t, {timezone:String}), {timezone:String}))",
}
_BOUNDS = {"events": "n_events", "pageviews": "n_pageviews", "visits": "n_visits"}


def _state(sketch: str) -> str:
    return sketch.replace("(", "State(", 1)


def _merge(sketch: str) -> str:
    return sketch.replace("(", "Merge(", 1)


def _events(sketch: str) -> dict[str, tuple[str, str]]:
    """Union column → (rollup column, raw events expression), for rows of events."""
    return {
        "n_pageviews": ("toUInt64(pageviews)", "countIf(name = 'pageview')"),
        "n_events": ("toUInt64(events)", "count()"),
        "s_visitors": ("visitors", f"{_state(sketch)}(visitor_id)"),
        "s_visits": ("visits", f"{_state(sketch)}(session_id)"),
    }


def _event_figures(sketch: str) -> dict[Metric, tuple[tuple[str, ...], str]]:
    """Metric → (union columns it needs, its expression over the union's rows)."""
    merged = _merge(sketch)
    return {
        "visitors": (("s_visitors",), f"{merged}(s_visitors)"),
        "visits": (("s_visits",), f"{merged}(s_visits)"),
        "pageviews": (("n_pageviews",), "sum(n_pageviews)"),
        "events": (("n_events",), "sum(n_events)"),
        "views_per_visit": (
            ("n_pageviews", "s_visits"),
            f"if({merged}(s_visits) = 0, 0, round(sum(n_pageviews) / {merged}(s_visits), 2))",
        ),
    }


_COLUMNS: dict[Table, dict[str, tuple[str, str]]] = {
    "site": _events(SITE_SKETCH),
    "traffic": _events(SKETCH),
    "visits": {
        "n_visits": ("toUInt64(visits)", "count()"),
        "s_visitors": ("visitors", f"{_state(SKETCH)}(visitor_id)"),
    },
}
_VISITS: dict[Metric, tuple[tuple[str, ...], str]] = {
    "visitors": (("s_visitors",), f"{_merge(SKETCH)}(s_visitors)"),
    "visits": (("n_visits",), "sum(n_visits)"),
}
_FIGURES: dict[Table, dict[Metric, tuple[tuple[str, ...], str]]] = {
    "site": _event_figures(SITE_SKETCH),
    "traffic": _event_figures(SKETCH),
    "visits": _VISITS,
    "exits": _VISITS,
}
# The whole site's visit figures: visitors, pageviews and events from totals_*, the rest from the
# visits themselves (`n` visits, `b` bounces, `d` milliseconds), exact as the raw path's.
_VISIT_FIGURES: dict[Metric, str] = {
    "visitors": "site.visitors",
    "pageviews": "site.pageviews",
    "events": "site.events",
    "visits": "visited.n",
    "views_per_visit": "if(visited.n = 0, 0, round(site.pageviews / visited.n, 2))",
    "bounce_rate": "if(visited.n = 0, 0, round(visited.b / visited.n, 4))",
    "visit_duration": "if(visited.n = 0, 0, round(visited.d / 1000 / visited.n, 1))",
}
# Visits folded by day (visit_days) and read one by one (sessions), as union columns.
_FOLDED = {
    "n_visits": "visits",
    "n_bounces": "bounces",
    "n_duration_ms": "duration_ms",
    "s_visitors": "visitors",
}
_WHOLE = {
    "n_visits": "toUInt64(count())",
    "n_bounces": "toUInt64(countIf(pageviews <= 1))",
    "n_duration_ms": "toUInt64(sum(duration_ms))",
    "s_visitors": f"{_state(SKETCH)}(visitor_id)",
}


def compile_rollup(
    query: ValidQuery,
    plan: RollupPlan,
    site_id: str,
    folded: Mapping[date, int] | None = None,
    only: Sequence[str] | None = None,
) -> Compiled:
    """`folded`: for visits by day, the closed days whose fold is in use, by version.
    `only`: the candidate values (compile_ranking), when the plan has candidates."""
    bind = Binder(site_id, query.interval.start, query.interval.end, query.timezone)
    if plan.table == "visit_figures":
        sql = _visit_figures(query, plan, folded or {}, bind)
        return Compiled(query=ScopedQuery("stats_rollup_visit_figures", sql), params=bind.params)
    figures = _FIGURES[plan.table]
    needed = list(dict.fromkeys(c for m in query.metrics for c in figures[m][0]))
    rows = _rows(query, plan, folded or {}, needed, only, bind)
    aliases = {d.name: f"dim_{i}" for i, d in enumerate(query.dimensions)}
    selected = [
        f"{_TIME[d.key] if d.kind == 'time' else 'value'} AS {aliases[d.name]}" for d in query.dimensions
    ]
    selected += [f"{figures[m][1]} AS {m}" for m in query.metrics]
    group_by = f"\nGROUP BY {', '.join(aliases.values())}" if aliases else ""
    order = ", ".join(f"{aliases.get(name, name)} {direction.upper()}" for name, direction in query.order)
    sql = f"""SELECT
    {_list(selected)}
FROM {rows}{group_by}
ORDER BY {order}
LIMIT {bind(query.limit + 1, "UInt32")} OFFSET {bind(query.offset, "UInt64")}"""  # noqa: S608 - names from the tables above, values bound
    return Compiled(query=ScopedQuery(f"stats_rollup_{plan.table}", sql), params=bind.params)


def compile_ranking(
    query: ValidQuery, plan: RollupPlan, site_id: str, folded: Mapping[date, int]
) -> Compiled:
    """The values with the largest bounds, (value, bound), one more than the plan's candidates."""
    if plan.candidates is None:
        raise ValueError("the plan has no candidates to rank")
    bind = Binder(site_id, query.interval.start, query.interval.end, query.timezone)
    bound = _BOUNDS[plan.bound]
    rows = _rows(query, plan, folded, [bound], None, bind)
    sql = f"""SELECT value, sum({bound}) AS b
FROM {rows}
GROUP BY value
ORDER BY b DESC, value ASC
LIMIT {bind(plan.candidates + 1, "UInt32")}"""  # noqa: S608 - names from the tables above, values bound
    return Compiled(query=ScopedQuery(f"stats_rollup_{plan.table}_ranking", sql), params=bind.params)


def certain(query: ValidQuery, plan: RollupPlan, rows: Sequence[Sequence[Any]], left_out: float) -> bool:
    """Whether no value left out of the candidates (the largest bound among them: `left_out`) could
    be among the rows asked for."""
    if left_out == 0:
        return True
    if len(rows) < query.limit + 1:
        # Fewer rows than asked for: the candidates ran out, so a left-out value would be among them.
        return False
    metrics: tuple[str, ...] = query.metrics
    last = float(rows[-1][len(query.dimensions) + metrics.index(query.order[0][0])])
    return left_out < last if plan.exact_bound else left_out < last * MARGIN


def _rows(
    query: ValidQuery,
    plan: RollupPlan,
    folded: Mapping[date, int],
    needed: list[str],
    only: Sequence[str] | None,
    bind: Binder,
) -> str:
    """A subquery of the plan's rows: value, t (with a time bucket) and the `needed` columns;
    `only` these values, when given, tested in each part so that the key's index skips the rest."""
    timed = any(d.kind == "time" for d in query.dimensions)
    kept = [f"value IN {bind(list(only), 'Array(String)')}"] if only is not None else []
    if plan.table == "exits":
        parts = _visits_by_day(plan, folded, needed, bind, kept)
    else:
        parts = [_part(plan.table, plan.dimension, span, needed, timed, bind, kept) for span in plan.spans]
    kept = [condition("value", f, bind) for f in query.filters]
    filtered = f"\nWHERE {' AND '.join(kept)}" if kept else ""
    inner = f"SELECT * FROM (\n{textwrap.indent(_union(parts), '    ')}\n){filtered}"  # noqa: S608
    # Written out wherever it is read: a scoped query reads no table by a name of its own (a CTE).
    return f"(\n{textwrap.indent(inner, '    ')}\n)"


def _visit_figures(query: ValidQuery, plan: RollupPlan, folded: Mapping[date, int], bind: Binder) -> str:
    needed = ["s_visitors", "n_pageviews", "n_events"]
    site = _union([_part("site", "", span, needed, False, bind) for span in plan.spans])
    visits = _union(_visits_by_day(plan, folded, ["n_visits", "n_bounces", "n_duration_ms"], bind))
    selected = [f"{_VISIT_FIGURES[m]} AS {m}" for m in query.metrics]
    return f"""SELECT
    {_list(selected)}
FROM (
    SELECT {_merge(SITE_SKETCH)}(s_visitors) AS visitors, sum(n_pageviews) AS pageviews, sum(n_events) AS events
    FROM (
{textwrap.indent(site, " " * 8)}
    )
) AS site
CROSS JOIN (
    SELECT sum(n_visits) AS n, sum(n_bounces) AS b, sum(n_duration_ms) AS d
    FROM (
{textwrap.indent(visits, " " * 8)}
    )
) AS visited"""  # noqa: S608 - names from the tables above, values bound


def _visits_by_day(
    plan: RollupPlan, folded: Mapping[date, int], needed: list[str], bind: Binder, only: Sequence[str] = ()
) -> list[str]:
    """Visits by exit page, or all of them (value ''), as value and the `needed` union columns:
    folded days' rows, and the other days' visits one by one from the sessions table."""
    dimension = plan.dimension if plan.table == "exits" else ""
    parts = []
    if folded:
        days, versions = bind(list(folded), "Array(Date)"), bind(list(folded.values()), "Array(UInt64)")
        selected = ["value", *(f"{_FOLDED[c]} AS {c}" for c in needed)]
        parts.append(f"""SELECT
    {_list(selected)}
FROM {{db:Identifier}}.visit_days FINAL
WHERE {" AND ".join([_SCOPE, f"dimension = {bind(dimension, 'String')}", *only])}
    AND day IN {days} AND version = transform(day, {days}, {versions}, toUInt64(0))""")  # noqa: S608
    live = [day for day in (*plan.closed, *plan.live) if day not in folded]
    if live:
        value = "finalizeAggregation(exit_page)" if dimension else "''"
        kept = ["events > 0", *only]
        selected = ["value", *(f"{_WHOLE[c]} AS {c}" for c in needed)]
        parts.append(f"""SELECT
    {_list(selected)}
FROM (
    SELECT {value} AS value, visitor_id, pageviews, events,
        dateDiff('millisecond', session_start, last_seen) AS duration_ms, last_seen
    FROM {{db:Identifier}}.sessions FINAL
    WHERE {_SCOPE} AND toDate(session_start) IN {bind(live, "Array(Date)")}
        AND session_start >= {{start:DateTime64(3, 'UTC')}} AND session_start < {{end:DateTime64(3, 'UTC')}}
)
WHERE {" AND ".join(kept)}
GROUP BY value""")  # noqa: S608
    if not parts:
        # No day of the range has begun: no visits, in the union's shape.
        parts.append(f"SELECT '' AS value, {', '.join(f'{_EMPTY[c]} AS {c}' for c in needed)} WHERE 0")
    return parts


_EMPTY = {
    "n_visits": "toUInt64(0)",
    "n_bounces": "toUInt64(0)",
    "n_duration_ms": "toUInt64(0)",
    "s_visitors": f"{_state(SKETCH)}(toUInt64(0))",
}


def _part(
    table: Table,
    dimension: str,
    span: Span,
    needed: list[str],
    timed: bool,
    bind: Binder,
    only: Sequence[str] = (),
) -> str:
    columns = _COLUMNS[table]
    if span.grain == "raw":
        values = {"site": {"": "''"}, "traffic": TRAFFIC_DIMENSIONS}.get(table, VISIT_DIMENSIONS)
        selected = [f"{values[dimension]} AS value"]
        selected += ["toStartOfHour(ts) AS t"] if timed else []
        selected += [f"{columns[c][1]} AS {c}" for c in needed]
        where = [
            _SCOPE,
            f"ts >= {bind(span.start, "DateTime64(3, 'UTC')")}",
            f"ts < {bind(span.end, "DateTime64(3, 'UTC')")}",
            "name != 'engagement'",
        ]
        if table == "visits":
            # A visit's first event, as the view counts it.
            where.append("session_id != 0 AND ts = session_start")
        where += [o.replace("value IN", f"{values[dimension]} IN", 1) for o in only]
        return f"""SELECT
    {_list(selected)}
FROM {{db:Identifier}}.events
WHERE {" AND ".join(where)}
GROUP BY {"value, t" if timed else "value"}"""  # noqa: S608 - names from the tables above, values bound
    bucket = "toDateTime(bucket, 'UTC')" if span.grain == "day" else "bucket"
    bounds = _bounds(span, bind)
    selected = ["value" if table != "site" else "'' AS value", *([f"{bucket} AS t"] if timed else [])]
    selected += [f"{columns[c][0]} AS {c}" for c in needed]
    name = "totals" if table == "site" else table
    kept = [_SCOPE, *([f"dimension = {bind(dimension, 'String')}", *only] if table != "site" else [])]
    return f"""SELECT
    {_list(selected)}
FROM {{db:Identifier}}.{name}_{span.grain}
WHERE {" AND ".join(kept)}
    AND bucket >= {bounds[0]} AND bucket < {bounds[1]}"""  # noqa: S608 - names from the tables above, values bound


def _bounds(span: Span, bind: Binder) -> tuple[str, str]:
    """The span's first and end bucket, bound, for its grain's rows."""
    if span.grain == "day":
        return bind(span.start.date(), "Date"), bind(span.end.date(), "Date")
    return bind(span.start, "DateTime('UTC')"), bind(span.end, "DateTime('UTC')")


def compile_together(members: Sequence[Planned], site_id: str) -> Compiled:
    """Breakdowns that rollup_plan.together grouped, in one read of their table's rows: per member's
    dimension its top values with their filters, as rows (dimension, value, visitors, then the
    table's TOGETHER_FIGURES), each member's limit + 1 of them at most."""
    first = members[0]
    table, spans = first.plan.table, first.plan.spans
    query = first.query
    bind = Binder(site_id, query.interval.start, query.interval.end, query.timezone)
    figures = _FIGURES[table]
    shown: list[Metric] = ["visitors", *TOGETHER_FIGURES[table]]
    needed = list(dict.fromkeys(c for m in shown for c in figures[m][0]))
    dimensions = bind([m.plan.dimension for m in members], "Array(String)")
    parts = []
    for span in spans:
        start, end = _bounds(span, bind)
        parts.append(f"""SELECT
    {_list(["dimension", "value", *(f"{_COLUMNS[table][c][0]} AS {c}" for c in needed)])}
FROM {{db:Identifier}}.{table}_{span.grain}
WHERE {_SCOPE} AND dimension IN {dimensions}
    AND bucket >= {start} AND bucket < {end}""")  # noqa: S608 - names from the tables above, values bound
    kept = [
        " AND ".join(
            [
                f"dimension = {bind(m.plan.dimension, 'String')}",
                *(condition("value", f, bind) for f in m.query.filters),
            ]
        )
        for m in members
    ]
    limit = max(m.query.limit for m in members) + 1
    sql = f"""SELECT
    {_list(["dimension", "value", *(f"{figures[m][1]} AS {m}" for m in shown)])}
FROM (
{textwrap.indent(_union(parts), "    ")}
)
WHERE {" OR ".join(f"({k})" for k in kept)}
GROUP BY dimension, value
ORDER BY dimension, visitors DESC, value ASC
LIMIT {bind(limit, "UInt32")} BY dimension"""  # noqa: S608 - names from the tables above, values bound
    return Compiled(query=ScopedQuery(f"stats_rollup_{table}_together", sql), params=bind.params)


def _union(parts: Sequence[str]) -> str:
    return "\nUNION ALL\n".join(parts)


def _list(items: Sequence[str]) -> str:
    return ",\n    ".join(items)
