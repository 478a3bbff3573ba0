"""What the overview shows, as its URL's query string says, and the query strings of its links.

    period   today | 24h (default) | 7d | 30d | month | 30m | custom
    from, to the custom period's first and last day, YYYY-MM-DD, in the site's timezone
    compare  off: no comparison with the previous period (on by default)
    f        a filter, repeatable: pulse.dashboard.filters

Other parameters are ignored (a link may carry tracking tags); a bad value of these is refused
with a ParamError naming it.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date
from urllib.parse import quote

import msgspec

from pulse.dashboard.filters import FilterError, UrlFilter, parse_filters, with_filter
from pulse.stats.overview_periods import MAX_CUSTOM_DAYS, PERIOD_CHOICES, PeriodChoice

DEFAULT_PERIOD: PeriodChoice = "24h"
# Characters left as they are in the links' query strings, so that a shared URL stays readable.
_READABLE = ",/:@!*'()"


class ParamError(ValueError):
    """The query string asks for something the overview cannot show; the message says what."""


class OverviewParams(msgspec.Struct, frozen=True):
    period: PeriodChoice = DEFAULT_PERIOD
    first: date | None = None
    last: date | None = None
    compare: bool = True
    filters: tuple[UrlFilter, ...] = ()

    @classmethod
    def parse(cls, items: Iterable[tuple[str, str]]) -> OverviewParams:
        """`items` are the query string's (name, value) pairs, repeated names included."""
        single: dict[str, str] = {}
        raw_filters: list[str] = []
        for name, value in items:
            if name == "f":
                raw_filters.append(value)
            elif name in ("period", "from", "to", "compare"):
                single[name] = value
        period = single.get("period", DEFAULT_PERIOD)
        choice = next((c for c in PERIOD_CHOICES if c == period), None)
        if choice is None:
            raise ParamError(f"unknown period {period[:40]!r}: use {', '.join(PERIOD_CHOICES)}")
        first = last = None
        if choice == "custom":
            first, last = _day(single.get("from"), "from"), _day(single.get("to"), "to")
            if last < first:
                raise ParamError(f"the period ends ({last}) before it starts ({first})")
            if (last - first).days >= MAX_CUSTOM_DAYS:
                raise ParamError(f"a custom period is at most {MAX_CUSTOM_DAYS} days long")
        compare = single.get("compare", "on")
        if compare not in ("on", "off"):
            raise ParamError(f"compare is on or off, not {compare[:20]!r}")
        try:
            filters = parse_filters(raw_filters)
        except FilterError as exc:
            raise ParamError(str(exc)) from None
        return cls(period=choice, first=first, last=last, compare=compare == "on", filters=filters)

    def query(self) -> str:
        """This view's query string, without the leading ?."""
        pairs: list[tuple[str, str]] = [("period", self.period)]
        if self.period == "custom" and self.first and self.last:
            pairs += [("from", self.first.isoformat()), ("to", self.last.isoformat())]
        if not self.compare:
            pairs.append(("compare", "off"))
        pairs += [("f", f.encode()) for f in self.filters]
        return "&".join(f"{name}={quote(value, safe=_READABLE)}" for name, value in pairs)

    # The views the page links to, as query strings.

    def at_period(self, period: PeriodChoice) -> str:
        return msgspec.structs.replace(self, period=period, first=None, last=None).query()

    def filtered(self, dimension: str, value: str) -> str:
        added = UrlFilter(dimension=dimension, op="is", value=value)
        return msgspec.structs.replace(self, filters=with_filter(self.filters, added)).query()

    def without_filter(self, index: int) -> str:
        kept = tuple(f for i, f in enumerate(self.filters) if i != index)
        return msgspec.structs.replace(self, filters=kept).query()

    def unfiltered(self) -> str:
        return msgspec.structs.replace(self, filters=()).query()

    def compared(self, on: bool) -> str:
        return msgspec.structs.replace(self, compare=on).query()


def _day(text: str | None, name: str) -> date:
    if not text:
        raise ParamError(f"a custom period needs {name}=YYYY-MM-DD")
    try:
        day = date.fromisoformat(text) if len(text) == len("2025-01-31") else None
    except ValueError:
        day = None
    if day is None or not 1970 <= day.year < 2200:
        raise ParamError(f"{name}={text[:40]!r} is not a date (YYYY-MM-DD)")
    return day
