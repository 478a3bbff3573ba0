"""Dashboard filters in the URL: `f=dimension,op,value`, one per `f`, every one holding.

    /sites/S?period=7d&f=country,is,DE&f=page,is,/pricing

The value is everything after the second comma, so it may hold commas itself; it may be empty
(`f=source,is,` keeps the visits without a source). `op` is is, is_not, contains or matches
(a regular expression). Dimensions are the ones the overview breaks down by, plus hostname and
the browser and OS versions. At most MAX_FILTERS of them; a bad one is refused with a message
naming it, never silently dropped: a shared link must mean the same for everyone.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import get_args

import msgspec

from pulse.stats import regex
from pulse.stats.query import Filter, FilterOp

MAX_FILTERS = 10
MAX_VALUE = 2048
OPS: dict[str, FilterOp] = {op: op for op in get_args(FilterOp)}
OP_LABELS: dict[str, str] = {"is": "is", "is_not": "is not", "contains": "contains", "matches": "matches"}
DIMENSION_LABELS: dict[str, str] = {
    "page": "Page",
    "entry_page": "Entry page",
    "exit_page": "Exit page",
    "source": "Source",
    "referrer": "Referrer",
    "channel": "Channel",
    "utm_source": "UTM source",
    "utm_medium": "UTM medium",
    "utm_campaign": "UTM campaign",
    "utm_content": "UTM content",
    "utm_term": "UTM term",
    "country": "Country",
    "device": "Device",
    "browser": "Browser",
    "browser_version": "Browser version",
    "os": "OS",
    "os_version": "OS version",
    "event": "Event",
    "goal": "Goal",
    "hostname": "Hostname",
}


class FilterError(ValueError):
    """A filter of the URL refused; the message names it and says why."""


class UrlFilter(msgspec.Struct, frozen=True):
    dimension: str
    op: FilterOp
    value: str

    def encode(self) -> str:
        return f"{self.dimension},{self.op},{self.value}"

    def query_filter(self) -> Filter:
        return (self.dimension, self.op, [self.value])

    @property
    def label(self) -> str:
        return f"{DIMENSION_LABELS[self.dimension]} {OP_LABELS[self.op]}"


def parse_filters(raw: Sequence[str]) -> tuple[UrlFilter, ...]:
    if len(raw) > MAX_FILTERS:
        raise FilterError(f"{len(raw)} filters: at most {MAX_FILTERS} may be combined")
    return tuple(_parse(text, i + 1) for i, text in enumerate(raw))


def _parse(text: str, n: int) -> UrlFilter:
    shown = text if len(text) <= 60 else text[:57] + "…"
    dimension, op, value = (*text.split(",", 2), "", "")[:3]
    if text.count(",") < 2:
        raise FilterError(f"filter {n} ({shown!r}) is not dimension,op,value")
    if dimension not in DIMENSION_LABELS:
        raise FilterError(
            f"filter {n} ({shown!r}): unknown dimension {dimension!r}; use one of "
            + ", ".join(DIMENSION_LABELS)
        )
    checked = OPS.get(op)
    if checked is None:
        raise FilterError(f"filter {n} ({shown!r}): unknown op {op!r}; use is, is_not, contains or matches")
    if len(value) > MAX_VALUE:
        raise FilterError(f"filter {n}: the value is {len(value)} characters long, at most {MAX_VALUE}")
    if checked == "matches" and (problem := regex.problem(value)) is not None:
        raise FilterError(f"filter {n} ({shown!r}): invalid regular expression: {problem}")
    return UrlFilter(dimension=dimension, op=checked, value=value)


def with_filter(filters: Sequence[UrlFilter], added: UrlFilter) -> tuple[UrlFilter, ...]:
    """`added` in place of any `is` filter on its dimension: clicking Germany after France shows Germany."""
    kept = [f for f in filters if not (f.dimension == added.dimension and f.op == "is")]
    return (*kept, added) if added not in kept else tuple(kept)
