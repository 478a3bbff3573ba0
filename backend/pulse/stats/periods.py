"""Named periods → a UTC time range aligned to the rollup grain that serves it."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Literal

import msgspec

Grain = Literal["minute", "hour", "day"]
PeriodName = Literal["30m", "today", "24h", "7d", "30d"]
PERIODS: tuple[PeriodName, ...] = ("30m", "today", "24h", "7d", "30d")

_STEP = {"minute": timedelta(minutes=1), "hour": timedelta(hours=1), "day": timedelta(days=1)}


class Period(msgspec.Struct, frozen=True):
    name: PeriodName
    start: datetime
    end: datetime
    grain: Grain

    @property
    def step(self) -> timedelta:
        return _STEP[self.grain]

    def buckets(self) -> list[datetime]:
        out, at = [], self.start
        while at < self.end:
            out.append(at)
            at += self.step
        return out


def _floor(at: datetime, grain: Grain) -> datetime:
    at = at.replace(second=0, microsecond=0)
    if grain in ("hour", "day"):
        at = at.replace(minute=0)
    if grain == "day":
        at = at.replace(hour=0)
    return at


def resolve_period(name: PeriodName, now: datetime | None = None) -> Period:
    now = now or datetime.now(UTC)
    spans: dict[PeriodName, tuple[Grain, int]] = {
        "30m": ("minute", 30),
        "today": ("hour", 0),
        "24h": ("hour", 24),
        "7d": ("day", 7),
        "30d": ("day", 30),
    }
    grain, count = spans[name]
    current = _floor(now, grain)
    start = _floor(now, "day") if name == "today" else current - _STEP[grain] * (count - 1)
    return Period(name=name, start=start, end=current + _STEP[grain], grain=grain)
