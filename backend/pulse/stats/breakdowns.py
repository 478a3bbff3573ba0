"""Which breakdowns can be read together (pulse.stats.compile.compile_breakdowns).

Read from raw events, each breakdown by where a visit came from or where it entered and left
folds every session of the range, and each by page, device, browser or OS scans the range's
events; the overview shows twelve of them. Those of one kind (session or event attribute) that
differ only in the attribute (and in leaving out its value "") are read in one pass instead.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import msgspec

from pulse.stats.query import Condition, Dimension, Metric, ValidQuery

# The metrics each kind of breakdown can read together: a session's attributes are one row per
# session, so visits count; an event's attributes are not, but their pageviews add up.
TOGETHER: dict[str, tuple[tuple[Metric, ...], ...]] = {
    "session": (("visitors",), ("visitors", "visits")),
    "event": (("visitors",), ("visitors", "pageviews")),
}

# Visits as rows (pulse.stats.visit_plan) give visits and pageviews alike by any visit attribute,
# after visitors (pulse.stats.visit_compile.compile_visit_breakdowns).
VISIT_FIGURES: frozenset[Metric] = frozenset({"visits", "pageviews"})


class Member(NamedTuple):
    # Its place among the queries given to `together`.
    position: int
    query: ValidQuery
    dimension: Dimension
    # It filters its own attribute `is_not [""]`.
    no_empty: bool


class Together(NamedTuple):
    # The members' shared filters, range, timezone and limit; compile_breakdowns reads it.
    shared: ValidQuery
    members: list[Member]


def together(queries: Sequence[tuple[int, ValidQuery]], visits: bool = False) -> list[Together]:
    """Groups of two or more breakdowns that one compile_breakdowns read answers exactly, or with
    `visits`, one pulse.stats.visit_compile.compile_visit_breakdowns read (any visit attribute but
    the page, visitors then VISIT_FIGURES)."""
    groups: dict[tuple[object, ...], list[Member]] = {}
    for index, query in queries:
        member = _member(index, query, visits)
        if member is not None:
            shared = _shared(member)
            key = (
                "visit" if visits else member.dimension.kind,
                tuple((f.dimension, f.op, f.values) for f in shared),
                query.interval,
                query.timezone,
                query.limit,
            )
            groups.setdefault(key, []).append(member)
    return [
        Together(msgspec.structs.replace(members[0].query, filters=_shared(members[0])), members)
        for members in groups.values()
        if len(members) > 1
    ]


def _member(index: int, query: ValidQuery, visits: bool) -> Member | None:
    """The query as a member, if it is one breakdown by a session or event attribute that reads
    metrics of TOGETHER (visitors then VISIT_FIGURES), in the default order, from the first row,
    without goal filters."""
    if len(query.dimensions) != 1 or query.offset != 0:
        return None
    (dimension,) = query.dimensions
    if visits:
        # By page a visit is a row per page, not one row: its visits and pageviews would not add up.
        first, *rest = query.metrics
        if first != "visitors" or not set(rest) <= VISIT_FIGURES or dimension.name == "page":
            return None
    elif query.metrics not in TOGETHER.get(dimension.kind, ()):
        return None
    if query.order != (("visitors", "desc"), (dimension.name, "asc")):
        return None
    if any(f.dimension.kind == "goal" for f in query.filters):
        return None
    no_empty = any(_drops_empty(f, dimension) for f in query.filters)
    return Member(index, query, dimension, no_empty)


def _shared(member: Member) -> tuple[Condition, ...]:
    return tuple(f for f in member.query.filters if not _drops_empty(f, member.dimension))


def _drops_empty(f: Condition, dimension: Dimension) -> bool:
    return f.dimension == dimension and f.op == "is_not" and f.values == ("",)
