"""The overview's periods, their comparison windows and chart buckets, and its URL parameters."""

from __future__ import annotations

from datetime import UTC, date, datetime
from urllib.parse import parse_qsl
from zoneinfo import ZoneInfo

import pytest

from pulse.dashboard.filters import UrlFilter
from pulse.dashboard.overview_view import OverviewParams, ParamError
from pulse.stats.overview_periods import Window, buckets, resolve_period

PARIS = "Europe/Paris"


def utc(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def test_today_is_compared_with_yesterday_until_the_same_time() -> None:
    period = resolve_period("today", PARIS, utc("2025-06-10T12:34:56"))
    # Paris is UTC+2 in June: its day starts at 22:00 UTC the evening before.
    assert period.current == Window(start=utc("2025-06-09T22:00"), end=utc("2025-06-10T22:00"))
    assert period.previous == Window(start=utc("2025-06-08T22:00"), end=utc("2025-06-09T22:00"))
    assert period.previous_to_date == Window(start=utc("2025-06-08T22:00"), end=utc("2025-06-09T12:35"))
    assert period.running
    assert period.grain == "hour"


def test_seven_days_across_a_clock_change_start_at_local_midnight() -> None:
    # Paris moved its clocks forward on 2025-03-30: the previous week starts at UTC+1's midnight.
    period = resolve_period("7d", PARIS, utc("2025-04-02T08:00"))
    assert period.current.start == utc("2025-03-26T23:00")
    assert period.previous == Window(start=utc("2025-03-19T23:00"), end=utc("2025-03-26T23:00"))
    assert [b.key for b in period.buckets(period.current)] == [
        f"2025-{d}" for d in ("03-27", "03-28", "03-29", "03-30", "03-31", "04-01", "04-02")
    ]


def test_this_month_is_compared_with_the_month_before_to_the_same_day() -> None:
    period = resolve_period("month", "UTC", utc("2025-03-15T12:00:30"))
    assert period.current == Window(start=utc("2025-03-01T00:00"), end=utc("2025-04-01T00:00"))
    assert period.previous == Window(start=utc("2025-02-01T00:00"), end=utc("2025-03-01T00:00"))
    assert period.previous_to_date == Window(start=utc("2025-02-01T00:00"), end=utc("2025-02-15T12:01"))
    # The rest of March has no figures yet, but the chart spans the month.
    assert len(period.buckets(period.current)) == 31


def test_a_finished_custom_period_is_compared_with_as_many_days_before_it() -> None:
    period = resolve_period("custom", "UTC", utc("2025-06-10T12:00"), date(2025, 5, 1), date(2025, 5, 3))
    assert period.current == Window(start=utc("2025-05-01T00:00"), end=utc("2025-05-04T00:00"))
    assert period.previous == Window(start=utc("2025-04-28T00:00"), end=utc("2025-05-01T00:00"))
    assert period.previous_to_date == period.previous
    assert not period.running
    assert (period.first_day, period.last_day) == (date(2025, 5, 1), date(2025, 5, 3))
    assert (
        resolve_period("custom", "UTC", utc("2025-06-10T12:00"), date(2024, 1, 1), date(2025, 1, 1)).grain
        == "week"
    )


def test_hour_buckets_are_named_as_the_stats_query_names_them() -> None:
    window = Window(start=utc("2025-06-09T22:00"), end=utc("2025-06-10T01:00"))
    keys = [b.key for b in buckets(window, "hour", ZoneInfo(PARIS))]
    assert keys == ["2025-06-10T00:00:00+02:00", "2025-06-10T01:00:00+02:00", "2025-06-10T02:00:00+02:00"]


def test_params_round_trip_through_their_query_string() -> None:
    query = "period=custom&from=2025-05-01&to=2025-05-31&compare=off&f=page,contains,/a,b&f=source,is,"
    params = OverviewParams.parse(parse_qsl(query, keep_blank_values=True))
    assert params.filters == (
        UrlFilter(dimension="page", op="contains", value="/a,b"),
        UrlFilter(dimension="source", op="is", value=""),
    )
    assert OverviewParams.parse(parse_qsl(params.query(), keep_blank_values=True)) == params
    # A click on a row replaces an `is` filter on the same dimension and keeps the others.
    clicked = OverviewParams.parse(parse_qsl(params.filtered("source", "Google"), keep_blank_values=True))
    assert [f.encode() for f in clicked.filters] == ["page,contains,/a,b", "source,is,Google"]


@pytest.mark.parametrize(
    ("query", "reason"),
    [
        ("f=country", "is not dimension,op,value"),
        ("f=props:plan,is,pro", "unknown dimension 'props:plan'"),
        ("f=page,matches,[", "invalid regular expression"),
        ("period=custom&from=2025-01-01", "needs to=YYYY-MM-DD"),
        ("period=custom&from=2025-01-01&to=2040-01-01", "at most 3660 days"),
    ],
)
def test_bad_params_are_refused_with_the_reason(query: str, reason: str) -> None:
    with pytest.raises(ParamError, match=reason.replace("[", r"\[")):
        OverviewParams.parse(parse_qsl(query, keep_blank_values=True))
