"""Goals in a stats query: which of the site's goals count, and whether an event completes one.

A page goal is completed by a pageview whose path matches its pattern in full, `*` standing
for any run of characters (/blog/*); an event goal by an event of that name.

Filters on `goal` choose among the site's goals by name: `is` and `is_not` name goals (an
unknown name is refused, it is a typo), `contains` and `matches` test the names. The goals
left are the counted ones, and only events that complete a counted goal are kept: so
["goal", "is", ["Signup"]] counts signups, and ["goal", "is_not", ["Signup"]] counts
conversions of every other goal. Without goal filters every goal of the site counts.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from pulse.oltp.goals import Goal
from pulse.stats import regex
from pulse.stats.errors import QueryError
from pulse.stats.query import Condition, ValidQuery

# Binds a value as a query parameter and returns its placeholder, {p3:String}.
Bind = Callable[[object, str], str]


def uses_goals(query: ValidQuery) -> bool:
    return (
        "conversion_rate" in query.metrics
        or any(d.kind == "goal" for d in query.dimensions)
        or any(f.dimension.kind == "goal" for f in query.filters)
    )


def counted_goals(query: ValidQuery, goals: Sequence[Goal]) -> list[Goal]:
    """The site's goals the query counts; refuses a query about goals on a site that has none."""
    if not goals:
        for i, metric in enumerate(query.metrics):
            if metric == "conversion_rate":
                raise QueryError("conversion_rate needs goals, and this site has none", f"metrics[{i}]")
        for i, d in enumerate(query.dimensions):
            if d.kind == "goal":
                raise QueryError("this site has no goals to group by", f"dimensions[{i}]")
    names = {goal.name for goal in goals}
    counted = list(goals)
    for condition in query.filters:
        if condition.dimension.kind != "goal":
            continue
        if condition.op in ("is", "is_not"):
            for j, value in enumerate(condition.values):
                if value not in names:
                    raise QueryError(f"this site has no goal named {value!r}", f"{condition.at}[2][{j}]")
        counted = [goal for goal in counted if _holds(condition, goal.name)]
    return counted


def _holds(condition: Condition, name: str) -> bool:
    values = condition.values
    if condition.op == "is":
        return name in values
    if condition.op == "is_not":
        return name not in values
    if condition.op == "contains":
        return any(value in name for value in values)
    # The patterns compile: pulse.stats.query checked them.
    return any(regex.search(value, name) for value in values)


def like_pattern(pattern: str) -> str:
    """A page goal's pattern as a LIKE pattern: its own % _ and \\ taken literally, * as %."""
    escaped = pattern.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return escaped.replace("*", "%")


def completed_goals(goals: Sequence[Goal], bind: Bind) -> str:
    """An Array(String) expression over an event row: the names of `goals` it completes."""
    if not goals:
        return "CAST([] AS Array(String))"
    branches = []
    for goal in goals:
        if goal.kind == "page":
            completes = f"name = 'pageview' AND pathname LIKE {bind(like_pattern(goal.pattern), 'String')}"
        else:
            completes = f"name = {bind(goal.pattern, 'String')}"
        branches.append(f"if({completes}, {bind(goal.name, 'String')}, '')")
    listed = ",\n        ".join(branches)
    return f"arrayFilter(completed -> completed != '', [\n        {listed}\n    ])"
