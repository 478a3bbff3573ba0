"""The overview's period in the site's timezone, the one it is compared with, and its chart buckets.

A period is a half-open UTC window. The previous period has the same length and ends where the
current one starts: the same number of the site's days before a day-based period (so a change of
daylight saving time does not shift it off midnight), the calendar month before "this month",
the 24 hours or 30 minutes before the others.

A period still running is compared with the same elapsed part of the previous one ("today
until 14:05" with "yesterday until 14:05"): a whole previous day against part of today would
read as a drop every morning. The chart still draws the whole previous period.
"""

from __future__ import annotations

import math
import zoneinfo
from datetime import UTC, date, datetime, time, timedelta
from typing import Literal, get_args

import msgspec

from pulse.stats.ranges import TimeGrain, resolve, timezone

PeriodChoice = Literal["30m", "today", "24h", "7d", "30d", "month", "custom"]
PERIOD_CHOICES: tuple[PeriodChoice, ...] = get_args(PeriodChoice)
NAMED_PERIODS: tuple[PeriodChoice, ...] = ("today", "24h", "7d", "30d", "month", "30m")
PERIOD_LABELS: dict[PeriodChoice, str] = {
    "30m": "Last 30 min",
    "today": "Today",
    "24h": "Last 24 hours",
    "7d": "Last 7 days",
    "30d": "Last 30 days",
    "month": "This month",
    "custom": "Custom",
}
# Longest custom range in days: ten years by month is 120 buckets, plenty for a chart.
MAX_CUSTOM_DAYS = 3660

_STEP = {"minute": timedelta(minutes=1), "hour": timedelta(hours=1)}
_DAYS = {"today": 1, "7d": 7, "30d": 30}


class Window(msgspec.Struct, frozen=True):
    """[start, end) in UTC."""

    start: datetime
    end: datetime

    def shifted_end(self, length: timedelta) -> Window:
        return Window(start=self.start, end=min(self.end, self.start + length))


class Bucket(msgspec.Struct, frozen=True):
    # Epoch seconds of its start, for the chart's x axis.
    t: int
    # How a stats query's time dimension names it (pulse.stats.query_result).
    key: str


class OverviewPeriod(msgspec.Struct, frozen=True):
    choice: PeriodChoice
    timezone: str
    current: Window
    previous: Window
    # The part of `previous` as long as the elapsed part of `current`: what the figures compare with.
    previous_to_date: Window
    grain: TimeGrain
    # Whether `current` holds the present, so its figures still move.
    running: bool
    # The local dates it spans (the custom form shows them).
    first_day: date
    last_day: date

    @property
    def tz(self) -> zoneinfo.ZoneInfo:
        return zoneinfo.ZoneInfo(self.timezone)

    def buckets(self, window: Window) -> list[Bucket]:
        return buckets(window, self.grain, self.tz)


def resolve_period(
    choice: PeriodChoice,
    zone: str,
    now: datetime,
    first: date | None = None,
    last: date | None = None,
) -> OverviewPeriod:
    """`first` and `last` are the custom period's days, both included; ignored otherwise."""
    tz = timezone(zone)
    if choice == "custom":
        if first is None or last is None:
            raise ValueError("a custom period needs its first and last day")
        current = Window(start=_midnight(first, tz), end=_midnight(last + timedelta(days=1), tz))
        days = (last - first).days + 1
        previous = Window(start=_midnight(first - timedelta(days=days), tz), end=current.start)
        grain = _custom_grain(days)
    else:
        interval = resolve(choice, tz, now)
        current = Window(start=interval.start, end=interval.end)
        previous = _previous(choice, current, tz)
        grain = _GRAINS[choice]
    running = current.start <= now < current.end
    elapsed = _next_minute(now) - current.start
    return OverviewPeriod(
        choice=choice,
        timezone=zone,
        current=current,
        previous=previous,
        previous_to_date=previous.shifted_end(elapsed) if running else previous,
        grain=grain,
        running=running,
        first_day=current.start.astimezone(tz).date(),
        last_day=(current.end - timedelta(microseconds=1)).astimezone(tz).date(),
    )


_GRAINS: dict[PeriodChoice, TimeGrain] = {
    "30m": "minute",
    "today": "hour",
    "24h": "hour",
    "7d": "day",
    "30d": "day",
    "month": "day",
}


def _custom_grain(days: int) -> TimeGrain:
    if days <= 2:
        return "hour"
    if days <= 92:
        return "day"
    if days <= 730:
        return "week"
    return "month"


def _previous(choice: PeriodChoice, current: Window, tz: zoneinfo.ZoneInfo) -> Window:
    first = current.start.astimezone(tz).date()
    if choice == "month":
        before = (first - timedelta(days=1)).replace(day=1)
        return Window(start=_midnight(before, tz), end=current.start)
    if choice in _DAYS:
        return Window(start=_midnight(first - timedelta(days=_DAYS[choice]), tz), end=current.start)
    length = current.end - current.start
    return Window(start=current.start - length, end=current.start)


def buckets(window: Window, grain: TimeGrain, tz: zoneinfo.ZoneInfo) -> list[Bucket]:
    """Every time bucket of `window`, empty ones included: the stats query leaves those out."""
    if grain in _STEP:
        step = _STEP[grain]
        count = math.ceil((window.end - window.start) / step)
        starts = [window.start + step * i for i in range(count)]
        return [Bucket(t=int(s.timestamp()), key=s.astimezone(tz).isoformat()) for s in starts]
    first = window.start.astimezone(tz).date()
    last = (window.end - timedelta(microseconds=1)).astimezone(tz).date()
    day = _bucket_start(first, grain)
    out = []
    while day <= last:
        out.append(Bucket(t=int(_midnight(day, tz).timestamp()), key=day.isoformat()))
        day = _next_bucket(day, grain)
    return out


def _bucket_start(day: date, grain: TimeGrain) -> date:
    if grain == "week":
        return day - timedelta(days=day.weekday())
    if grain == "month":
        return day.replace(day=1)
    return day


def _next_bucket(day: date, grain: TimeGrain) -> date:
    if grain == "week":
        return day + timedelta(days=7)
    if grain == "month":
        return (day.replace(day=1) + timedelta(days=32)).replace(day=1)
    return day + timedelta(days=1)


def _midnight(day: date, tz: zoneinfo.ZoneInfo) -> datetime:
    return datetime.combine(day, time(), tzinfo=tz).astimezone(UTC)


def _next_minute(now: datetime) -> datetime:
    return now.astimezone(UTC).replace(second=0, microsecond=0) + timedelta(minutes=1)
