"""A stats query's date range and timezone → a half-open UTC interval [start, end).

Dates are whole days in the query's timezone, both ends included: {"from": "2025-03-01",
"to": "2025-03-31"} is March as the site owner's clock sees it. Datetimes are RFC 3339
instants, `to` excluded; one without an offset is read in the query's timezone. Named
periods end with the current minute, hour or day, so their last bucket is the one in progress.
"""

from __future__ import annotations

import functools
import math
import zoneinfo
from datetime import UTC, date, datetime, time, timedelta
from typing import Annotated, Literal

import msgspec

from pulse.stats.errors import QueryError

PeriodName = Literal["30m", "today", "24h", "7d", "30d", "month"]
TimeGrain = Literal["minute", "hour", "day", "week", "month"]

# A range outside these years is a typo, not a question (DateTime64 holds 1900 to 2299).
EARLIEST = datetime(1970, 1, 1, tzinfo=UTC)
LATEST = datetime(2200, 1, 1, tzinfo=UTC)

_APPROX_STEP = {
    "minute": timedelta(minutes=1),
    "hour": timedelta(hours=1),
    "day": timedelta(days=1),
    "week": timedelta(days=7),
    "month": timedelta(days=28),
}


_BOUND = (
    "A date (2025-01-31), the {end} day included, in the query's timezone; or an RFC 3339 datetime "
    "(2025-01-31T12:00:00Z), `to` excluded."
)


class DateRange(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    start: Annotated[str, msgspec.Meta(max_length=40, description=_BOUND.format(end="first"))] = (
        msgspec.field(name="from")
    )
    end: Annotated[str, msgspec.Meta(max_length=40, description=_BOUND.format(end="last"))] = msgspec.field(
        name="to"
    )


class Interval(msgspec.Struct, frozen=True):
    start: datetime
    end: datetime

    def buckets(self, grain: TimeGrain) -> int:
        """How many buckets of `grain` the interval spans, at most (a month counted as 28 days)."""
        return math.ceil((self.end - self.start) / _APPROX_STEP[grain]) + 1


@functools.cache
def _known_timezones() -> frozenset[str]:
    return frozenset(zoneinfo.available_timezones())


def timezone(name: str) -> zoneinfo.ZoneInfo:
    if name not in _known_timezones():
        raise QueryError(f"unknown timezone {name!r}: use an IANA name such as Europe/Paris", "timezone")
    return zoneinfo.ZoneInfo(name)


def resolve(date_range: PeriodName | DateRange, tz: zoneinfo.ZoneInfo, now: datetime) -> Interval:
    if isinstance(date_range, DateRange):
        start = _instant(date_range.start, tz, "date_range.from", end=False)
        end = _instant(date_range.end, tz, "date_range.to", end=True)
        if end <= start:
            raise QueryError("date_range.to must be after date_range.from", "date_range.to")
        return Interval(start=start, end=end)
    return _period(date_range, now.astimezone(tz), tz)


def _instant(text: str, tz: zoneinfo.ZoneInfo, at: str, *, end: bool) -> datetime:
    try:
        parsed: date | datetime = (
            date.fromisoformat(text) if len(text) == len("2025-01-31") else datetime.fromisoformat(text)
        )
    except ValueError:
        raise QueryError(
            f"{text!r} is neither a date (2025-01-31) nor an RFC 3339 datetime (2025-01-31T12:00:00Z)", at
        ) from None
    try:
        if isinstance(parsed, datetime):
            instant = (parsed if parsed.tzinfo else parsed.replace(tzinfo=tz)).astimezone(UTC)
        else:
            instant = _midnight(parsed + timedelta(days=1) if end else parsed, tz)
    except OverflowError:
        instant = LATEST + timedelta(days=1) if end else EARLIEST - timedelta(days=1)
    if not EARLIEST <= instant <= LATEST:
        raise QueryError(f"{text!r} is outside {EARLIEST.year} to {LATEST.year}", at)
    return instant


def _midnight(day: date, tz: zoneinfo.ZoneInfo) -> datetime:
    return datetime.combine(day, time(), tzinfo=tz).astimezone(UTC)


def _period(name: PeriodName, local_now: datetime, tz: zoneinfo.ZoneInfo) -> Interval:
    today = local_now.date()
    tomorrow = _midnight(today + timedelta(days=1), tz)
    if name == "30m":
        minute = local_now.replace(second=0, microsecond=0).astimezone(UTC)
        return Interval(start=minute - timedelta(minutes=29), end=minute + timedelta(minutes=1))
    if name == "24h":
        hour = local_now.replace(minute=0, second=0, microsecond=0).astimezone(UTC)
        return Interval(start=hour - timedelta(hours=23), end=hour + timedelta(hours=1))
    if name == "month":
        first = today.replace(day=1)
        following = (first + timedelta(days=31)).replace(day=1)
        return Interval(start=_midnight(first, tz), end=_midnight(following, tz))
    days = {"today": 1, "7d": 7, "30d": 30}[name]
    return Interval(start=_midnight(today - timedelta(days=days - 1), tz), end=tomorrow)
