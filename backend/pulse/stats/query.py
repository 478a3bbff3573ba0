"""The stats query a client posts (`StatsQuery`), decoded and checked into a `ValidQuery`.

msgspec checks the shape and the closed sets (metrics, filter ops, sort directions, named
periods); `check` then checks what the types cannot say: dimension names (they include
`props:<key>`), regular expressions, the range against the time buckets asked for, and
order_by naming something the query selects. Every refusal is a QueryError whose `at` is a
path into the body: metrics[1], filters[0][2], date_range.to.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Annotated, Literal, get_args

import msgspec

from pulse.stats import regex
from pulse.stats.errors import QueryError
from pulse.stats.ranges import DateRange, Interval, PeriodName, TimeGrain, resolve, timezone

Metric = Literal[
    "visitors",
    "visits",
    "pageviews",
    "views_per_visit",
    "bounce_rate",
    "visit_duration",
    "events",
    "conversion_rate",
]
METRICS: tuple[Metric, ...] = get_args(Metric)
FilterOp = Literal["is", "is_not", "contains", "matches"]
Direction = Literal["asc", "desc"]

# Columns of the events table, one value per event. A visitor's browser, device and country
# do not change within a visit, so these are also the visit's.
EVENT_DIMENSIONS = {
    "page": "pathname",
    "hostname": "hostname",
    "country": "country",
    "device": "device",
    "browser": "browser",
    "browser_version": "browser_version",
    "os": "os",
    "os_version": "os_version",
    "event": "name",
}
# One value per visit, whichever of its events a filter keeps: its first and last pageview's
# path, and where it came from (its first event's referrer, source, channel and campaign tags):
# the pages after the first one came from the site itself.
SESSION_DIMENSIONS = (
    "entry_page",
    "exit_page",
    "referrer",
    "source",
    "channel",
    "utm_source",
    "utm_medium",
    "utm_campaign",
    "utm_content",
    "utm_term",
)
TIME_DIMENSIONS: dict[str, TimeGrain] = {f"time:{grain}": grain for grain in get_args(TimeGrain)}
PROPS_PREFIX = "props:"
DIMENSIONS = (*EVENT_DIMENSIONS, *SESSION_DIMENSIONS, "goal", *TIME_DIMENSIONS)

MAX_DIMENSIONS = 5
MAX_FILTERS = 20
MAX_VALUES = 100
MAX_LIMIT = 10_000
MAX_OFFSET = 1_000_000
# The collector's limit on a property key (pulse.events.beacon.PropKey).
MAX_PROP_KEY = 64
# A week of minutes: more buckets than a chart can show is a question for a coarser bucket.
MAX_TIME_BUCKETS = 7 * 24 * 60

DimensionName = Annotated[str, msgspec.Meta(min_length=1, max_length=len(PROPS_PREFIX) + MAX_PROP_KEY)]
Value = Annotated[str, msgspec.Meta(max_length=2048)]
Values = Annotated[list[Value], msgspec.Meta(min_length=1, max_length=MAX_VALUES)]
Filter = tuple[DimensionName, FilterOp, Values]
OrderBy = tuple[DimensionName, Direction]


class StatsQuery(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    metrics: Annotated[list[Metric], msgspec.Meta(min_length=1, max_length=len(METRICS))]
    dimensions: Annotated[
        list[DimensionName],
        msgspec.Meta(
            max_length=MAX_DIMENSIONS,
            description="Group by these: " + ", ".join(DIMENSIONS) + ", or props:<key>.",
        ),
    ] = []
    filters: Annotated[
        list[Filter],
        msgspec.Meta(
            max_length=MAX_FILTERS,
            description="[dimension, op, values]: all filters hold; a filter holds when any of its values does.",
        ),
    ] = []
    date_range: PeriodName | DateRange = "7d"
    timezone: (
        Annotated[
            str,
            msgspec.Meta(
                max_length=64, description="IANA name; dates and buckets follow it. Default: the site's."
            ),
        ]
        | None
    ) = None
    order_by: Annotated[
        list[OrderBy],
        msgspec.Meta(
            max_length=len(METRICS) + MAX_DIMENSIONS,
            description="[metric or dimension of this query, asc|desc]; by default the first time "
            "bucket ascending, else the first metric descending. Ties go by the dimensions.",
        ),
    ] = []
    limit: Annotated[int, msgspec.Meta(ge=1, le=MAX_LIMIT)] = 100
    offset: Annotated[int, msgspec.Meta(ge=0, le=MAX_OFFSET)] = 0


DimensionKind = Literal["event", "session", "time", "prop", "goal"]


class Dimension(msgspec.Struct, frozen=True):
    # As the client wrote it: order_by refers to it by this name.
    name: str
    kind: DimensionKind
    # The events column, the session attribute, the time grain or the property key ("" for goal).
    key: str


class Condition(msgspec.Struct, frozen=True):
    dimension: Dimension
    op: FilterOp
    values: tuple[str, ...]
    at: str


class ValidQuery(msgspec.Struct, frozen=True):
    metrics: tuple[Metric, ...]
    dimensions: tuple[Dimension, ...]
    filters: tuple[Condition, ...]
    # (metric or dimension name, direction), the client's first, then every dimension for ties.
    order: tuple[tuple[str, Direction], ...]
    limit: int
    offset: int
    timezone: str
    interval: Interval


_decoder = msgspec.json.Decoder(StatsQuery)


def decode(body: bytes) -> StatsQuery:
    try:
        return _decoder.decode(body)
    except msgspec.ValidationError as exc:
        raise _explained(str(exc)) from None
    except msgspec.DecodeError as exc:
        raise QueryError(f"the body is not valid JSON: {exc}", "$") from None


def _explained(message: str) -> QueryError:
    """msgspec's message with its path made relative (`$.metrics[1]` → metrics[1]); unknown and
    missing fields and values outside a closed set are worded for this API."""
    text, _, path = message.partition(" - at `")
    at = path.rstrip("`").removeprefix("$").removeprefix(".") or "$"
    if text.startswith("Object contains unknown field `"):
        field = text.removeprefix("Object contains unknown field `").rstrip("`")
        return QueryError(f"unknown field {field!r}", field if at == "$" else f"{at}.{field}")
    if text.startswith("Object missing required field `"):
        field = text.removeprefix("Object missing required field `").rstrip("`")
        return QueryError(f"missing field {field!r}", field if at == "$" else f"{at}.{field}")
    if text.startswith("Invalid enum value "):
        noun, choices = _enum(at)
        return QueryError(f"unknown {noun} {text.removeprefix('Invalid enum value ')}{choices}", at)
    return QueryError(text, at)


def _enum(at: str) -> tuple[str, str]:
    """What the closed set at `at` holds, and its choices where they are few enough to list."""
    if at.startswith("metrics["):
        return "metric", ""
    if at.startswith("filters["):
        return "filter op", ": use is, is_not, contains or matches"
    if at.startswith("order_by["):
        return "direction", ": use asc or desc"
    if at == "date_range":
        return "period", ": use " + ", ".join(get_args(PeriodName)) + ' or {"from", "to"}'
    return "value", ""


def check(query: StatsQuery, now: datetime, site_timezone: str = "UTC") -> ValidQuery:
    """`site_timezone` reads the query when it names none: "today" is the site owner's today."""
    zone = query.timezone or site_timezone
    tz = timezone(zone)
    interval = resolve(query.date_range, tz, now)
    _no_repeats(query.metrics, "metrics", "metric")
    _no_repeats(query.dimensions, "dimensions", "dimension")
    dimensions = tuple(dimension(name, f"dimensions[{i}]") for i, name in enumerate(query.dimensions))
    for i, name in enumerate(query.dimensions):
        grain = TIME_DIMENSIONS.get(name)
        if grain is not None and (count := interval.buckets(grain)) > MAX_TIME_BUCKETS:
            raise QueryError(
                f"{name} over this range makes up to {count} buckets, more than {MAX_TIME_BUCKETS}: "
                "use a coarser bucket or a shorter range",
                f"dimensions[{i}]",
            )
    return ValidQuery(
        metrics=tuple(query.metrics),
        dimensions=dimensions,
        filters=tuple(_condition(f, f"filters[{i}]") for i, f in enumerate(query.filters)),
        order=_order(query, dimensions),
        limit=query.limit,
        offset=query.offset,
        timezone=zone,
        interval=interval,
    )


def dimension(name: str, at: str) -> Dimension:
    if name in EVENT_DIMENSIONS:
        return Dimension(name=name, kind="event", key=EVENT_DIMENSIONS[name])
    if name in SESSION_DIMENSIONS:
        return Dimension(name=name, kind="session", key=name)
    if name == "goal":
        return Dimension(name=name, kind="goal", key="")
    if name in TIME_DIMENSIONS:
        return Dimension(name=name, kind="time", key=TIME_DIMENSIONS[name])
    if name.startswith(PROPS_PREFIX):
        key = name.removeprefix(PROPS_PREFIX)
        if not key or len(key) > MAX_PROP_KEY:
            raise QueryError(
                f"a property dimension is props:<key>, the key 1 to {MAX_PROP_KEY} characters", at
            )
        return Dimension(name=name, kind="prop", key=key)
    raise QueryError(f"unknown dimension {name!r}", at)


def _condition(spec: Filter, at: str) -> Condition:
    name, op, values = spec
    target = dimension(name, f"{at}[0]")
    if target.kind == "time":
        raise QueryError("time buckets cannot be filtered: narrow date_range instead", f"{at}[0]")
    if op == "matches":
        for j, pattern in enumerate(values):
            if (problem := regex.problem(pattern)) is not None:
                raise QueryError(f"invalid regular expression {pattern!r}: {problem}", f"{at}[2][{j}]")
    return Condition(dimension=target, op=op, values=tuple(values), at=at)


def _order(query: StatsQuery, dimensions: tuple[Dimension, ...]) -> tuple[tuple[str, Direction], ...]:
    selected = {*query.metrics, *query.dimensions}
    order: list[tuple[str, Direction]] = []
    for i, (name, direction) in enumerate(query.order_by):
        if name not in selected:
            raise QueryError(
                f"order_by names {name!r}, which is not among this query's metrics or dimensions",
                f"order_by[{i}][0]",
            )
        if any(name == seen for seen, _ in order):
            raise QueryError(f"{name!r} is ordered by twice", f"order_by[{i}][0]")
        order.append((name, direction))
    if not order:
        time_buckets = [d.name for d in dimensions if d.kind == "time"]
        order = [(time_buckets[0], "asc")] if time_buckets else [(query.metrics[0], "desc")]
    # Ties are broken by every dimension, so pages of a result never overlap or skip a row.
    order.extend((d.name, "asc") for d in dimensions if all(d.name != seen for seen, _ in order))
    return tuple(order)


def _no_repeats(names: Sequence[str], field: str, noun: str) -> None:
    for i, name in enumerate(names):
        if name in names[:i]:
            raise QueryError(f"{noun} {name!r} is listed twice", f"{field}[{i}]")
