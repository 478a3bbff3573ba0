"""POST /api/v1/sites/{id}/query: known visits through the real collector, exact figures back.

One site is seeded once for the module (four visitors, one session each) and every test asks
it a different question. The events carry the collector's clock, so the seed waits until it is
clear of an hour boundary in UTC and in Asia/Kolkata (+05:30) and every event lands in one hour.
"""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import msgspec
import pytest

from pulse.oltp.db import create_engine
from pulse.oltp.goals import Goals
from pulse.stats.query import DIMENSIONS
from pulse.stats.ranges import PeriodName, resolve
from pulse.warehouse.client import Warehouse
from stack import Stack
from visitor import USER_AGENT

HOST = "https://query.example"
GOOGLE = "https://www.google.com/"
NEWS = "https://news.ycombinator.com/"

# Per visitor (one X-Forwarded-For address each), in order: (name, path, referrer, props, engagement ms).
Visit = list[tuple[str, str, str, dict[str, str], int]]
VISITS: dict[str, Visit] = {
    "198.51.100.21": [
        ("pageview", "/", GOOGLE, {}, 0),
        ("pageview", "/pricing", "", {}, 0),
        ("signup", "/pricing", "", {"plan": "pro"}, 0),
        ("pageview", "/signup/done", "", {}, 0),
        ("engagement", "/signup/done", "", {}, 3000),
    ],
    "198.51.100.22": [("pageview", "/", GOOGLE, {}, 0)],
    "198.51.100.23": [("pageview", "/blog/hello", NEWS, {}, 0), ("pageview", "/pricing", "", {}, 0)],
    "198.51.100.24": [
        ("pageview", "/blog/other?utm_source=newsletter&utm_campaign=spring", "", {}, 0),
        ("download", "/blog/other", "", {"file": "a.pdf"}, 0),
    ],
}
PAGEVIEWS = 7
EVENTS = 9  # engagement pings are not events
RAW_ROWS = 10


class Seeded(msgspec.Struct):
    site_id: str
    token: str
    first_ts: datetime
    # Mean first-to-last event time of the four sessions, from the raw rows.
    mean_duration_s: float


def _seconds_to_boundary(now: float) -> float:
    """Seconds until the next :00 or :30 of the UTC clock: an hour boundary in UTC or in +05:30."""
    return 1800 - now % 1800


@pytest.fixture(scope="module")
async def seeded(stack: Stack) -> Seeded:
    tenant = await stack.tenant("Query")
    engine = create_engine(stack.settings.effective_database_url)
    try:
        goals = Goals(engine)
        await goals.create(tenant.tenant_id, tenant.site.id, "Signup", "event", "signup")
        await goals.create(tenant.tenant_id, tenant.site.id, "Blog", "page", "/blog/*")
    finally:
        await engine.dispose()
    if (wait := _seconds_to_boundary(time.time())) < 60:
        await asyncio.sleep(wait + 1)
    site = tenant.site.id
    async with httpx.AsyncClient(base_url=stack.collector, headers={"user-agent": USER_AGENT}) as collector:
        for address, events in VISITS.items():
            for name, path, referrer, props, engaged in events:
                beacon: dict[str, Any] = {"s": site, "u": f"{HOST}{path}", "n": name, "r": referrer}
                beacon |= {"p": props} if props else {}
                beacon |= {"e": engaged} if engaged else {}
                response = await collector.post(
                    "/api/event", content=msgspec.json.encode(beacon), headers={"x-forwarded-for": address}
                )
                assert response.status_code == 202, response.text
                # Gaps make the sessions' durations differ from nothing.
                await asyncio.sleep(0.3)

    warehouse = Warehouse(stack.settings.effective_clickhouse_url, stack.settings.clickhouse_database)

    def raw_rows() -> list[tuple[int, datetime]]:
        sql = "SELECT session_id, ts FROM events WHERE tenant_id = {t:String} AND site_id = {s:String}"
        rows: Any = warehouse.client.query(sql, parameters={"t": tenant.tenant_id, "s": site}).result_rows
        return [(int(session), ts.replace(tzinfo=UTC)) for session, ts in rows]

    async def stored() -> int:
        return len(await warehouse.run(raw_rows))

    assert await stack.wait_for(stored, RAW_ROWS) == RAW_ROWS
    rows = await warehouse.run(raw_rows)
    sessions: dict[int, list[datetime]] = {}
    for session, ts in rows:
        sessions.setdefault(session, []).append(ts)
    assert len(sessions) == len(VISITS)
    durations = [(max(times) - min(times)).total_seconds() for times in sessions.values()]
    return Seeded(
        site_id=site,
        token=await stack.token(tenant),
        first_ts=min(ts for _, ts in rows),
        mean_duration_s=sum(durations) / len(durations),
    )


async def _query(
    stack: Stack, seeded: Seeded, body: dict[str, Any] | bytes, token: str = ""
) -> httpx.Response:
    # A read waits behind the worker's inserts on the stack's one chDB connection: seconds, when
    # the machine is busy.
    async with httpx.AsyncClient(
        base_url=stack.dashboard, headers={"authorization": f"Bearer {token or seeded.token}"}, timeout=30
    ) as api:
        content = body if isinstance(body, bytes) else msgspec.json.encode(body)
        return await api.post(
            f"/api/v1/sites/{seeded.site_id}/query",
            content=content,
            headers={"content-type": "application/json"},
        )


async def _rows(stack: Stack, seeded: Seeded, body: dict[str, Any]) -> list[tuple[Any, ...]]:
    """The results as (dimension values..., metric values...) tuples; asserts a 200."""
    response = await _query(stack, seeded, {"date_range": "24h", **body})
    assert response.status_code == 200, response.text
    return [(*row["dimensions"], *row["metrics"]) for row in response.json()["results"]]


ALL_METRICS = [
    "visitors",
    "visits",
    "pageviews",
    "events",
    "views_per_visit",
    "bounce_rate",
    "visit_duration",
    "conversion_rate",
]


async def test_aggregate_metrics_over_the_whole_range(stack: Stack, seeded: Seeded) -> None:
    response = await _query(stack, seeded, {"metrics": ALL_METRICS, "date_range": "24h"})
    assert response.status_code == 200, response.text
    body = response.json()
    (row,) = body["results"]
    figures = dict(zip(ALL_METRICS, row["metrics"], strict=True))
    duration = figures.pop("visit_duration")
    assert row["dimensions"] == []
    # Bounces: the visitor with one pageview, and the one with a pageview and a download.
    # Conversions: a signup, and two visitors on /blog/*.
    assert figures == {
        "visitors": 4,
        "visits": 4,
        "pageviews": PAGEVIEWS,
        "events": EVENTS,
        "views_per_visit": 1.75,
        "bounce_rate": 0.5,
        "conversion_rate": 0.75,
    }
    # The sessions' first-to-last times, engagement pings included, from the raw rows: 0.3 s apart.
    assert duration == pytest.approx(seeded.mean_duration_s, abs=0.051)
    assert duration >= 0.3
    assert body["meta"]["metrics"] == ALL_METRICS
    assert body["meta"]["has_more"] is False
    assert body["meta"]["next_offset"] is None


async def test_breakdown_by_page(stack: Stack, seeded: Seeded) -> None:
    rows = await _rows(
        stack, seeded, {"metrics": ["visitors", "pageviews", "events"], "dimensions": ["page"], "limit": 10}
    )
    # The first metric, descending, is the default order; ties go by page.
    assert rows == [
        ("/", 2, 2, 2),
        ("/pricing", 2, 2, 3),
        ("/blog/hello", 1, 1, 1),
        ("/blog/other", 1, 1, 2),
        ("/signup/done", 1, 1, 1),
    ]


async def test_hour_buckets_in_a_timezone_half_an_hour_off_utc(stack: Stack, seeded: Seeded) -> None:
    kolkata = ZoneInfo("Asia/Kolkata")
    response = await _query(
        stack,
        seeded,
        {
            "metrics": ["pageviews", "events"],
            "dimensions": ["time:hour"],
            "date_range": "24h",
            "timezone": "Asia/Kolkata",
        },
    )
    assert response.status_code == 200, response.text
    body = response.json()
    hour = seeded.first_ts.astimezone(kolkata).replace(minute=0, second=0, microsecond=0)
    assert hour.isoformat().endswith(":00:00+05:30")
    assert [(r["dimensions"], r["metrics"]) for r in body["results"]] == [
        ([hour.isoformat()], [PAGEVIEWS, EVENTS])
    ]
    assert body["meta"]["timezone"] == "Asia/Kolkata"
    assert body["meta"]["from"].endswith("+05:30")


async def test_day_buckets_follow_the_timezone_date(stack: Stack, seeded: Seeded) -> None:
    kiritimati = ZoneInfo("Pacific/Kiritimati")  # UTC+14: most of the time another date than UTC's
    rows = await _rows(
        stack, seeded, {"metrics": ["visitors"], "dimensions": ["time:day"], "timezone": "Pacific/Kiritimati"}
    )
    assert rows == [(seeded.first_ts.astimezone(kiritimati).date().isoformat(), 4)]


async def test_date_range_of_dates_and_of_datetimes(stack: Stack, seeded: Seeded) -> None:
    day = seeded.first_ts.date().isoformat()
    assert await _rows(stack, seeded, {"metrics": ["pageviews"], "date_range": {"from": day, "to": day}}) == [
        (PAGEVIEWS,)
    ]
    before = (seeded.first_ts - timedelta(seconds=1)).isoformat()
    just_after_first = (seeded.first_ts + timedelta(milliseconds=1)).isoformat()
    # `to` is excluded: a range ending at the first event's time holds nothing.
    exact = {"from": before, "to": seeded.first_ts.isoformat()}
    assert await _rows(stack, seeded, {"metrics": ["pageviews"], "date_range": exact}) == [(0,)]
    first = {"from": before, "to": just_after_first}
    assert await _rows(stack, seeded, {"metrics": ["pageviews"], "date_range": first}) == [(1,)]
    yesterday = (seeded.first_ts - timedelta(days=1)).date().isoformat()
    assert await _rows(
        stack, seeded, {"metrics": ["pageviews"], "date_range": {"from": yesterday, "to": yesterday}}
    ) == [(0,)]


@pytest.mark.parametrize(
    ("filter_", "expected"),
    [
        (["page", "is", ["/", "/pricing"]], (3, 4, 5)),
        (["page", "is_not", ["/"]], (3, 5, 7)),
        (["page", "contains", ["blog"]], (2, 2, 3)),
        (["page", "matches", ["^/(pricing|signup)"]], (2, 3, 4)),
        # Where a visit came from is its first event's: the filter keeps the whole visit.
        (["referrer", "is", [GOOGLE, NEWS]], (3, 6, 7)),
        (["event", "is", ["signup", "download"]], (2, 0, 2)),
        (["utm_campaign", "is", ["spring"]], (1, 1, 2)),
        (["props:plan", "is", ["pro"]], (1, 0, 1)),
        (["goal", "is", ["Blog"]], (2, 2, 2)),
        (["goal", "is_not", ["Blog"]], (1, 0, 1)),
        (["entry_page", "is", ["/"]], (2, 4, 5)),
        (["exit_page", "matches", ["^/blog/", "^/pricing$"]], (2, 3, 4)),
    ],
)
async def test_each_filter_op(
    stack: Stack, seeded: Seeded, filter_: list[Any], expected: tuple[int, ...]
) -> None:
    rows = await _rows(stack, seeded, {"metrics": ["visitors", "pageviews", "events"], "filters": [filter_]})
    assert rows == [expected]


@pytest.mark.parametrize("name", [*DIMENSIONS, "props:plan"])
async def test_every_dimension_groups_and_filters(stack: Stack, seeded: Seeded, name: str) -> None:
    body: dict[str, Any] = {"metrics": ALL_METRICS, "dimensions": [name], "limit": 50}
    if not name.startswith("time:"):
        # Filters every value passes, "" included (an event without the property, a test address).
        body["filters"] = [[name, "contains", [""]], [name, "matches", ["^"]]]
        if name != "goal":  # a goal filter names goals
            body["filters"].append([name, "is_not", ["no such value"]])
    rows = await _rows(stack, seeded, body)
    # Each visitor is in one group at least; only conversions have a goal: two on /blog/*, a signup.
    assert sum(row[1] for row in rows) >= (3 if name == "goal" else 4)


async def test_filters_combine_and_values_are_any_of(stack: Stack, seeded: Seeded) -> None:
    filters = [["page", "is", ["/pricing", "/blog/hello", "/nowhere"]], ["referrer", "is_not", [NEWS]]]
    # /pricing by the visitor from Google, with the signup sent from it; not the visit from NEWS.
    assert await _rows(
        stack, seeded, {"metrics": ["visitors", "pageviews", "events"], "filters": filters}
    ) == [(1, 1, 2)]


async def test_a_visits_pages_count_for_where_the_visit_came_from(stack: Stack, seeded: Seeded) -> None:
    rows = await _rows(
        stack,
        seeded,
        {"metrics": ["visitors", "pageviews"], "dimensions": ["source", "channel"], "limit": 10},
    )
    # The pages after a visit's first came from the site itself, and count for where the visit came from.
    assert rows == [
        ("Google", "search", 2, 4),
        ("Hacker News", "social", 1, 2),
        ("Newsletter", "email", 1, 1),
    ]


async def test_custom_properties_as_a_dimension(stack: Stack, seeded: Seeded) -> None:
    rows = await _rows(
        stack,
        seeded,
        {
            "metrics": ["events"],
            "dimensions": ["event", "props:plan"],
            "filters": [["event", "is_not", ["pageview"]]],
            "order_by": [["event", "desc"]],
        },
    )
    # A property the event lacks reads as "".
    assert rows == [("signup", "pro", 1), ("download", "", 1)]


async def test_entry_and_exit_pages_are_the_sessions_first_and_last_pageviews(
    stack: Stack, seeded: Seeded
) -> None:
    rows = await _rows(
        stack,
        seeded,
        {
            "metrics": ["visits", "bounce_rate"],
            "dimensions": ["entry_page", "exit_page"],
            "order_by": [["entry_page", "asc"]],
        },
    )
    assert rows == [
        ("/", "/", 1, 1.0),
        ("/", "/signup/done", 1, 0.0),
        ("/blog/hello", "/pricing", 1, 0.0),
        ("/blog/other", "/blog/other", 1, 1.0),
    ]
    # A filter on the exit page keeps whole sessions: every page of the visit that left from /pricing.
    left_from_pricing = await _rows(
        stack,
        seeded,
        {"metrics": ["pageviews"], "dimensions": ["page"], "filters": [["exit_page", "is", ["/pricing"]]]},
    )
    assert left_from_pricing == [("/blog/hello", 1), ("/pricing", 1)]


async def test_goal_conversions(stack: Stack, seeded: Seeded) -> None:
    by_goal = await _rows(
        stack, seeded, {"metrics": ["visitors", "events", "conversion_rate"], "dimensions": ["goal"]}
    )
    assert by_goal == [("Blog", 2, 2, 0.5), ("Signup", 1, 1, 0.25)]
    signups = await _rows(
        stack, seeded, {"metrics": ["visitors", "conversion_rate"], "filters": [["goal", "is", ["Signup"]]]}
    )
    assert signups == [(1, 0.25)]
    # Per entry page: the conversion rate of the visitors who came in there.
    by_entry = await _rows(
        stack,
        seeded,
        {
            "metrics": ["visitors", "conversion_rate"],
            "dimensions": ["entry_page"],
            "order_by": [["entry_page", "asc"]],
        },
    )
    assert by_entry == [("/", 2, 0.5), ("/blog/hello", 1, 1.0), ("/blog/other", 1, 1.0)]
    matched = await _rows(
        stack,
        seeded,
        {
            "metrics": ["visitors", "conversion_rate"],
            "dimensions": ["goal", "entry_page"],
            "filters": [["goal", "matches", ["^Sign"]]],
        },
    )
    assert matched == [("Signup", "/", 1, 0.5)]


async def test_ordering_and_pagination(stack: Stack, seeded: Seeded) -> None:
    body: dict[str, Any] = {
        "metrics": ["pageviews"],
        "dimensions": ["page"],
        "order_by": [["pageviews", "desc"]],
        "date_range": "24h",
        "limit": 2,
    }
    pages = []
    offset: int | None = 0
    while offset is not None:
        response = await _query(stack, seeded, {**body, "offset": offset})
        assert response.status_code == 200, response.text
        answer = response.json()
        pages.append(
            ([tuple(r["dimensions"] + r["metrics"]) for r in answer["results"]], answer["meta"]["has_more"])
        )
        offset = answer["meta"]["next_offset"]
    assert pages == [
        ([("/", 2), ("/pricing", 2)], True),
        ([("/blog/hello", 1), ("/blog/other", 1)], True),
        ([("/signup/done", 1)], False),
    ]
    ascending = await _rows(
        stack,
        seeded,
        {"metrics": ["pageviews"], "dimensions": ["page"], "order_by": [["page", "asc"]], "limit": 3},
    )
    assert ascending == [("/", 2), ("/blog/hello", 1), ("/blog/other", 1)]


async def test_another_tenants_site_is_not_found(stack: Stack, seeded: Seeded) -> None:
    other = await stack.token(await stack.tenant("QueryOther"))
    assert (await _query(stack, seeded, {"metrics": ["visitors"]}, token=other)).status_code == 404
    # Even for a query that is not valid: a refusal does not tell whether the site exists.
    assert (await _query(stack, seeded, {"metrics": ["nope"]}, token=other)).status_code == 404


async def test_conversion_rate_needs_goals(stack: Stack) -> None:
    tenant = await stack.tenant("QueryNoGoals")
    token = await stack.token(tenant)
    async with httpx.AsyncClient(
        base_url=stack.dashboard, headers={"authorization": f"Bearer {token}"}, timeout=30
    ) as api:
        response = await api.post(
            f"/api/v1/sites/{tenant.site.id}/query", json={"metrics": ["visitors", "conversion_rate"]}
        )
    assert response.status_code == 400
    assert response.json() == {
        "error": "conversion_rate needs goals, and this site has none",
        "at": "metrics[1]",
    }


INVALID: list[tuple[dict[str, Any] | bytes, str, str]] = [
    (b"{", "$", "not valid JSON"),
    ({"metrics": ["visitors", "visits2"]}, "metrics[1]", "unknown metric 'visits2'"),
    ({"metrics": []}, "metrics", "length >= 1"),
    ({"metrics": ["visitors", "visitors"]}, "metrics[1]", "listed twice"),
    ({"dimensions": ["page"]}, "metrics", "missing field 'metrics'"),
    ({"metrics": ["visitors"], "dimension": ["page"]}, "dimension", "unknown field 'dimension'"),
    (
        {"metrics": ["visitors"], "dimensions": ["page", "pages"]},
        "dimensions[1]",
        "unknown dimension 'pages'",
    ),
    ({"metrics": ["visitors"], "dimensions": ["props:"]}, "dimensions[0]", "props:<key>"),
    ({"metrics": ["visitors"], "filters": [["page", "equals", ["/"]]]}, "filters[0][1]", "unknown filter op"),
    ({"metrics": ["visitors"], "filters": [["page", "is", []]]}, "filters[0][2]", "length >= 1"),
    ({"metrics": ["visitors"], "filters": [["page", "is"]]}, "filters[0]", "length 3"),
    ({"metrics": ["visitors"], "filters": [["pages", "is", ["/"]]]}, "filters[0][0]", "unknown dimension"),
    (
        {"metrics": ["visitors"], "filters": [["page", "matches", ["/a", "(?=b)"]]]},
        "filters[0][2][1]",
        "invalid regular expression",
    ),
    (
        {"metrics": ["visitors"], "filters": [["page", "matches", ["(unclosed"]]]},
        "filters[0][2][0]",
        "missing )",
    ),
    (
        {"metrics": ["visitors"], "filters": [["time:day", "is", ["2025-01-01"]]]},
        "filters[0][0]",
        "narrow date_range",
    ),
    (
        {"metrics": ["visitors"], "filters": [["goal", "is", ["Signup", "Purchase"]]]},
        "filters[0][2][1]",
        "no goal named 'Purchase'",
    ),
    ({"metrics": ["visitors"], "filters": [["page", "is", ["/"] * 101]]}, "filters[0][2]", "length <= 100"),
    ({"metrics": ["visitors"], "date_range": "1y"}, "date_range", "unknown period"),
    (
        {"metrics": ["visitors"], "date_range": {"from": "2025-02-01", "to": "2025-01-01"}},
        "date_range.to",
        "after",
    ),
    (
        {"metrics": ["visitors"], "date_range": {"from": "yesterday", "to": "2025-01-01"}},
        "date_range.from",
        "neither a date",
    ),
    ({"metrics": ["visitors"], "date_range": {"from": "2025-01-01"}}, "date_range.to", "missing field 'to'"),
    (
        {"metrics": ["visitors"], "date_range": {"from": "0001-01-01", "to": "2025-01-01"}},
        "date_range.from",
        "outside",
    ),
    (
        {"metrics": ["visitors"], "dimensions": ["time:minute"], "date_range": "30d"},
        "dimensions[0]",
        "buckets",
    ),
    ({"metrics": ["visitors"], "timezone": "Mars/Olympus_Mons"}, "timezone", "unknown timezone"),
    ({"metrics": ["visitors"], "order_by": [["pageviews", "desc"]]}, "order_by[0][0]", "not among"),
    ({"metrics": ["visitors"], "order_by": [["visitors", "up"]]}, "order_by[0][1]", "unknown direction"),
    ({"metrics": ["visitors"], "limit": 10_001}, "limit", "<= 10000"),
    ({"metrics": ["visitors"], "limit": 0}, "limit", ">= 1"),
    ({"metrics": ["visitors"], "offset": -1}, "offset", ">= 0"),
]


@pytest.mark.parametrize(("body", "at", "says"), INVALID, ids=[case[1] + ":" + case[2] for case in INVALID])
async def test_invalid_queries_are_refused_naming_the_part(
    stack: Stack, seeded: Seeded, body: dict[str, Any] | bytes, at: str, says: str
) -> None:
    response = await _query(stack, seeded, body)
    assert response.status_code == 400, response.text
    answer = response.json()
    assert set(answer) == {"error", "at"}
    assert answer["at"] == at
    assert says in answer["error"]


async def test_openapi_document_at_a_stable_url_describes_the_query(stack: Stack) -> None:
    async with httpx.AsyncClient(base_url=stack.dashboard, timeout=30) as client:
        response = await client.get("/api/v1/openapi.json")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/json")
    document = response.json()
    operation = document["paths"]["/api/v1/sites/{site_id}/query"]["post"]
    request = operation["requestBody"]["content"]["application/json"]["schema"]
    assert request["required"] == ["metrics"]
    assert "conversion_rate" in request["properties"]["metrics"]["items"]["enum"]
    assert set(request["properties"]["date_range"]["anyOf"][1]["properties"]) == {"from", "to"}
    assert set(operation["responses"]["400"]["content"]["application/json"]["schema"]["properties"]) == {
        "error",
        "at",
    }
    result = operation["responses"]["200"]["content"]["application/json"]["schema"]["$ref"].rsplit("/", 1)[-1]
    meta = document["components"]["schemas"][result]["properties"]["meta"]["$ref"].rsplit("/", 1)[-1]
    assert {"has_more", "next_offset", "from", "to", "timezone"} <= set(
        document["components"]["schemas"][meta]["properties"]
    )


@pytest.mark.parametrize(
    ("period", "start", "end"),
    [
        ("30m", "2025-03-30T03:01:00+02:00", "2025-03-30T03:31:00+02:00"),
        # 23 hours: the clocks went forward at 02:00.
        ("today", "2025-03-30T00:00:00+01:00", "2025-03-31T00:00:00+02:00"),
        ("24h", "2025-03-29T03:00:00+01:00", "2025-03-30T04:00:00+02:00"),
        ("7d", "2025-03-24T00:00:00+01:00", "2025-03-31T00:00:00+02:00"),
        ("30d", "2025-03-01T00:00:00+01:00", "2025-03-31T00:00:00+02:00"),
        ("month", "2025-03-01T00:00:00+01:00", "2025-04-01T00:00:00+02:00"),
    ],
)
def test_named_periods_end_with_the_current_bucket_in_the_timezone(
    period: PeriodName, start: str, end: str
) -> None:
    paris = ZoneInfo("Europe/Paris")
    now = datetime(2025, 3, 30, 1, 30, 15, tzinfo=UTC)  # 03:30:15 in Paris, on the day DST starts
    interval = resolve(period, paris, now)
    assert (interval.start.astimezone(paris).isoformat(), interval.end.astimezone(paris).isoformat()) == (
        start,
        end,
    )


async def test_a_query_without_a_timezone_reads_in_the_sites(stack: Stack) -> None:
    tenant = await stack.tenant("QueryZone")
    await stack.accounts.update_site(tenant.tenant_id, tenant.site.id, timezone="Asia/Kolkata")
    site = Seeded(
        site_id=tenant.site.id, token=await stack.token(tenant), first_ts=datetime.now(UTC), mean_duration_s=0
    )
    own = await _query(stack, site, {"metrics": ["visitors"], "date_range": "today"})
    assert own.status_code == 200, own.text
    assert own.json()["meta"]["timezone"] == "Asia/Kolkata"
    assert own.json()["meta"]["from"].endswith("T00:00:00+05:30")
    named = await _query(stack, site, {"metrics": ["visitors"], "date_range": "today", "timezone": "UTC"})
    assert named.json()["meta"]["timezone"] == "UTC"
