"""The overview's figures as people read them: 1.2k, 42%, 1m 05s, +12%, "Direct / None"."""

from __future__ import annotations

from typing import Literal

import msgspec

from pulse.dashboard.countries import country_name
from pulse.stats.overview import CARD_METRICS, Figures

Trend = Literal["up", "down", "flat", "new", "none"]

CARD_LABELS = {
    "visitors": "Unique visitors",
    "visits": "Visits",
    "pageviews": "Pageviews",
    "views_per_visit": "Views per visit",
    "bounce_rate": "Bounce rate",
    "visit_duration": "Visit duration",
}
# A rise in these is bad news.
_LOWER_IS_BETTER = frozenset({"bounce_rate"})
_COUNTS = frozenset({"visitors", "visits", "pageviews", "events"})
_PER_VISIT = frozenset({"views_per_visit", "bounce_rate", "visit_duration"})

CHANNELS = {
    "direct": "Direct",
    "search": "Search",
    "social": "Social",
    "email": "Email",
    "paid": "Paid",
    "referral": "Referral",
    "internal": "Internal",
}
_EMPTY = {
    "source": "Direct / None",
    "referrer": "Direct / None",
    "channel": "(none)",
    "country": "Unknown",
    "entry_page": "(no pageview)",
    "exit_page": "(no pageview)",
}


class Card(msgspec.Struct, frozen=True):
    metric: str
    label: str
    value: str
    # The exact figure, for the tooltip.
    exact: str
    previous: str | None
    change: str | None
    trend: Trend
    # Whether the change is good news: colours it green or red.
    good: bool | None


def cards(current: Figures, previous: Figures | None) -> list[Card]:
    # A period without visits has no bounce rate or duration to compare with, rather than 0.
    empty = previous is not None and previous.values["visits"] == 0
    return [
        _card(
            m,
            current.values[m],
            None if previous is None or (empty and m in _PER_VISIT) else previous.values[m],
        )
        for m in CARD_METRICS
    ]


def _card(metric: str, value: float, before: float | None) -> Card:
    change, trend = _change(metric, value, before)
    rising = trend in ("up", "new")
    good = None if trend in ("flat", "none") else rising != (metric in _LOWER_IS_BETTER)
    return Card(
        metric=metric,
        label=CARD_LABELS[metric],
        value=figure(metric, value),
        exact=exact(metric, value),
        previous=exact(metric, before) if before is not None else None,
        change=change,
        trend=trend,
        good=good,
    )


def _change(metric: str, value: float, before: float | None) -> tuple[str | None, Trend]:
    if before is None:
        return None, "none"
    if metric == "bounce_rate":
        points = round((value - before) * 100)
        return f"{_signed(points)} pp", _trend(points)
    if before == 0:
        return ("new", "new") if value > 0 else ("0%", "flat")
    percent = round((value - before) / before * 100)
    return f"{_signed(percent)}%", _trend(percent)


def _trend(delta: int) -> Trend:
    return "up" if delta > 0 else "down" if delta < 0 else "flat"


def _signed(n: int) -> str:
    # A real minus sign: a hyphen reads as a dash next to a figure.
    return f"+{n}" if n > 0 else f"\u2212{-n}" if n < 0 else "0"


def figure(metric: str, value: float) -> str:
    if metric in _COUNTS:
        return compact(int(value))
    if metric in ("bounce_rate", "conversion_rate"):
        return f"{value * 100:.0f}%" if value * 100 >= 10 or value == 0 else f"{value * 100:.1f}%"
    if metric == "visit_duration":
        return duration(value)
    return f"{value:.2f}"


def exact(metric: str, value: float) -> str:
    if metric in _COUNTS:
        return f"{int(value):,}"
    if metric in ("bounce_rate", "conversion_rate"):
        return f"{value * 100:.2f}%"
    if metric == "visit_duration":
        return f"{value:.1f} s"
    return f"{value:.2f}"


def compact(n: int) -> str:
    if n < 10_000:
        return f"{n:,}"
    for size, suffix in ((1_000_000_000, "B"), (1_000_000, "M"), (1_000, "k")):
        if n >= size:
            scaled = n / size
            return f"{scaled:.1f}{suffix}" if scaled < 100 else f"{scaled:.0f}{suffix}"
    return str(n)


def duration(seconds: float) -> str:
    s = round(seconds)
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m {s % 60:02d}s"
    return f"{s // 3600}h {s % 3600 // 60:02d}m"


def value_label(dimension: str, value: str) -> str:
    """A dimension's value as a row or a filter chip names it."""
    if value == "":
        return _EMPTY.get(dimension, "(none)")
    if dimension == "channel":
        return CHANNELS.get(value, value)
    if dimension == "country":
        return country_name(value)
    if dimension == "device":
        return value.capitalize()
    return value
