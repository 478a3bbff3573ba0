"""The site overview in a real Chromium: figures of events sent through the real collector,
filters from a click on any row, the comparison with the previous period, CSV export, and
script payloads rendered as text.

Past days are seeded as tests/replay_days.py does: past-dated events produced to events.raw,
which the rollup worker counts like any other (the collector stamps the present)."""

from __future__ import annotations

import contextlib
import csv
import io
import json
import random
import re
import time
import uuid
from collections.abc import AsyncIterator, Sequence
from datetime import UTC, datetime, timedelta
from urllib.parse import parse_qs, urlsplit

import httpx
import msgspec
import pytest
from aiokafka import AIOKafkaProducer
from playwright.async_api import Browser, BrowserContext, Page, expect

from artifacts import artifact
from dashboard_client import login
from pulse.dashboard.app import create_dashboard_app
from pulse.dashboard.overview_pages import refresh_timer_s
from pulse.embedded.services import free_port
from pulse.events.message import EventV1, encode, partition_key
from pulse.kafka.partitioning import keyed_partitioner
from pulse.oltp.goals import Goals
from pulse.resources import Resources
from stack import Stack, Tenant, serving
from visitor import BROWSER, USER_AGENT

PHONE_UA = (
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 "
    "(KHTML, like Gecko) Version/17.5 Mobile/15E148 Safari/604.1"
)
FIREFOX_UA = "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:133.0) Gecko/20100101 Firefox/133.0"


class Visit(msgspec.Struct):
    visitor: int
    pages: list[str]
    country: str = ""
    referrer: str = ""
    user_agent: str = USER_AGENT
    # Seconds before now of its first pageview; the next ones follow a minute apart.
    ago_s: int = 60
    events: list[str] = []
    query: str = ""


async def _seed(stack: Stack, tenant: Tenant, visits: Sequence[Visit]) -> int:
    """Produces the visits' events to events.raw; returns how many there are."""
    now_ms = int(time.time() * 1000)
    events = []
    for visit in visits:
        start = now_ms - visit.ago_s * 1000
        for i, path in enumerate(visit.pages):
            events.append(_event(tenant, visit, start + i * 60_000, "pageview", path, i))
        for j, name in enumerate(visit.events):
            events.append(_event(tenant, visit, start + j * 1000 + 500, name, visit.pages[0], 1))
    producer = AIOKafkaProducer(
        bootstrap_servers=stack.settings.kafka_bootstrap_servers, acks="all", partitioner=keyed_partitioner
    )
    await producer.start()
    try:
        for event in events:
            await producer.send(stack.settings.topic_raw, encode(event), key=partition_key(event))
        await producer.flush()
    finally:
        await producer.stop()
    return len(events)


def _event(tenant: Tenant, visit: Visit, ts_ms: int, name: str, path: str, i: int) -> EventV1:
    query = f"?{visit.query}" if visit.query and i == 0 else ""
    return EventV1(
        event_id=uuid.uuid4().bytes,
        tenant_id=tenant.tenant_id,
        site_id=tenant.site.id,
        ts_ms=ts_ms,
        name=name,
        url=f"https://shop.example{path}{query}",
        referrer=visit.referrer if i == 0 else f"https://shop.example{visit.pages[0]}",
        visitor_id=visit.visitor,
        user_agent=visit.user_agent,
        screen_width=390 if visit.user_agent == PHONE_UA else 1280,
        props={},
        country=visit.country,
    )


async def _stored(stack: Stack, tenant: Tenant, events: int, days: int = 30) -> None:
    """Waits until the stats query API counts `events` over the last `days` days."""
    token = await stack.token(tenant)
    today = datetime.now(UTC).date()
    body = {
        "metrics": ["events"],
        "date_range": {"from": (today - timedelta(days=days)).isoformat(), "to": today.isoformat()},
        "timezone": "UTC",
    }
    async with httpx.AsyncClient(
        base_url=stack.dashboard, headers={"authorization": f"Bearer {token}"}, timeout=30
    ) as api:

        async def counted() -> int:
            answer = await api.post(f"/api/v1/sites/{tenant.site.id}/query", json=body)
            rows = answer.json().get("results", []) if answer.status_code == 200 else []
            return int(rows[0]["metrics"][0]) if rows else 0

        assert await stack.wait_for(counted, events, timeout_s=60) == events


async def _session(stack: Stack, tenant: Tenant) -> str:
    async with httpx.AsyncClient(base_url=stack.dashboard, timeout=30) as client:
        await login(client, tenant.email, tenant.password)
        cookie = client.cookies.get("pulse_session")
    assert cookie
    return cookie


async def _signed_in(
    stack: Stack, browser: Browser, tenant: Tenant, width: int = 1280, javascript: bool = True
) -> BrowserContext:
    context = await browser.new_context(
        viewport={"width": width, "height": 900}, java_script_enabled=javascript
    )
    await context.add_cookies(
        [{"name": "pulse_session", "value": await _session(stack, tenant), "url": stack.dashboard}]
    )
    return context


@contextlib.asynccontextmanager
async def _api_client(stack: Stack, tenant: Tenant) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=stack.dashboard, timeout=30) as client:
        await login(client, tenant.email, tenant.password)
        yield client


def _watch(page: Page) -> list[str]:
    """Collects dialogs (a payload that ran) and page errors."""
    problems: list[str] = []
    page.on("dialog", lambda dialog: (problems.append(f"dialog: {dialog.message}"), dialog.dismiss()))
    page.on("pageerror", lambda exc: problems.append(f"page error: {exc}"))
    return problems


def _filters(url: str) -> list[str]:
    return parse_qs(urlsplit(url).query).get("f", [])


@pytest.mark.browser
async def test_overview_figures_match_the_events_sent_through_the_collector(
    stack: Stack, browser: Browser
) -> None:
    tenant = await stack.tenant("OverviewCollector")
    site = tenant.site.id
    # Two visitors (one per address): the first views three pages, the second one page.
    beacons = [
        ("198.51.100.7", "/", "https://www.google.com/search?q=pulse"),
        ("198.51.100.7", "/pricing", ""),
        ("198.51.100.7", "/docs", ""),
        ("198.51.100.8", "/pricing", "https://news.ycombinator.com/item?id=1"),
    ]
    async with httpx.AsyncClient(base_url=stack.collector, headers=BROWSER) as collector:
        for address, path, referrer in beacons:
            beacon = {"s": site, "u": f"https://collector.example{path}", "r": referrer}
            sent = await collector.post(
                "/api/event", content=json.dumps(beacon), headers={"x-forwarded-for": address}
            )
            assert sent.status_code == 202, sent.text
    assert await stack.counts(tenant, {"pageviews": 4, "visitors": 2}) == {"pageviews": 4, "visitors": 2}

    context = await _signed_in(stack, browser, tenant)
    page = await context.new_page()
    problems = _watch(page)
    await page.goto(f"{stack.dashboard}/sites/{site}?period=today")
    await expect(page.locator("#stat-pageviews")).to_have_text("4")
    await expect(page.locator("#stat-visitors")).to_have_text("2")
    await expect(page.locator("#stat-visits")).to_have_text("2")
    await expect(page.locator("#stat-views-per-visit")).to_have_text("2.00")
    # One of the two visits saw a single page.
    await expect(page.locator("#stat-bounce-rate")).to_have_text("50%")
    await page.locator("label[for=ov-tab-pages]").click()
    pages = page.locator("#panel-pages .ov-rows .ov-row")
    await expect(pages).to_have_count(3)
    await expect(pages.first.locator(".ov-text")).to_have_text("/pricing")
    await expect(pages.first.locator(".ov-num").first).to_have_text("2")
    await page.locator("label[for=ov-tab-sources]").click()
    await expect(page.locator("#panel-sources .ov-text")).to_have_text(["Google", "Hacker News"])
    await context.close()
    assert problems == []


@pytest.mark.browser
async def test_clicking_a_row_filters_every_figure_and_back_undoes_it(stack: Stack, browser: Browser) -> None:
    tenant = await stack.tenant("OverviewFilters")
    visits = [
        Visit(visitor=1, pages=["/", "/pricing"], country="DE"),
        Visit(visitor=2, pages=["/pricing"], country="DE", user_agent=PHONE_UA),
        Visit(visitor=3, pages=["/"], country="FR"),
        Visit(visitor=4, pages=["/docs", "/", "/pricing"], country="US", user_agent=FIREFOX_UA),
        Visit(visitor=5, pages=["/docs"], country="US"),
    ]
    await _stored(stack, tenant, await _seed(stack, tenant, visits))

    context = await _signed_in(stack, browser, tenant)
    page = await context.new_page()
    problems = _watch(page)
    overview = f"{stack.dashboard}/sites/{tenant.site.id}?period=today"
    await page.goto(overview)
    await expect(page.locator("#stat-visitors")).to_have_text("5")
    await expect(page.locator("#stat-pageviews")).to_have_text("8")

    germany = page.locator("#panel-countries .ov-label", has_text="Germany")
    await germany.click()
    await expect(page).to_have_url(re.compile(r"f=country,is,DE"))
    assert _filters(page.url) == ["country,is,DE"]
    await expect(page.locator("#stat-visitors")).to_have_text("2")
    await expect(page.locator("#stat-pageviews")).to_have_text("3")
    await expect(page.locator(".ov-chip")).to_have_text(re.compile(r"Country is\s+Germany"))
    # The panels narrow too: only Germany's pages and countries are left.
    await expect(page.locator("#panel-countries .ov-text")).to_have_text(["Germany"])
    await page.locator("label[for=ov-tab-pages]").click()
    await expect(page.locator("#panel-pages .ov-text")).to_have_text(["/pricing", "/"])

    # A second filter from another panel combines with the first.
    await page.locator("label[for=ov-tab-devices]").click()
    await page.locator("#panel-devices .ov-label", has_text="Mobile").click()
    await expect(page.locator("#stat-visitors")).to_have_text("1")
    assert _filters(page.url) == ["country,is,DE", "device,is,mobile"]
    # The tab chosen before the swap is still the one shown.
    await expect(page.locator("#panel-devices")).to_be_visible()

    await page.go_back()
    await expect(page.locator("#stat-visitors")).to_have_text("2")
    assert _filters(page.url) == ["country,is,DE"]
    await page.go_back()
    await expect(page.locator("#stat-visitors")).to_have_text("5")
    assert _filters(page.url) == []

    # The shared URL opens the same view from scratch; its chip removes the filter.
    await page.goto(f"{overview}&f=country,is,US")
    await expect(page.locator("#stat-visitors")).to_have_text("2")
    await page.locator(".ov-chip").click()
    await expect(page.locator("#stat-visitors")).to_have_text("5")
    assert _filters(page.url) == []
    await context.close()
    assert problems == []


@pytest.mark.browser
async def test_filters_work_without_javascript(stack: Stack, browser: Browser) -> None:
    tenant = await stack.tenant("OverviewNoScript")
    visits = [Visit(visitor=1, pages=["/a"], country="DE"), Visit(visitor=2, pages=["/b"], country="FR")]
    await _stored(stack, tenant, await _seed(stack, tenant, visits))
    context = await _signed_in(stack, browser, tenant, javascript=False)
    page = await context.new_page()
    await page.goto(f"{stack.dashboard}/sites/{tenant.site.id}?period=today")
    await expect(page.locator("#stat-visitors")).to_have_text("2")
    # Without scripts the tabs are radio buttons still: CSS shows the checked one.
    await page.locator("label[for=ov-tab-countries]").click()
    await page.locator("#panel-countries .ov-label", has_text="France").click()
    await expect(page.locator("#stat-visitors")).to_have_text("1")
    assert _filters(page.url) == ["country,is,FR"]
    await page.locator(".ov-periods a", has_text="Last 7 days").click()
    await expect(page.locator("#stat-visitors")).to_have_text("1")
    assert parse_qs(urlsplit(page.url).query)["period"] == ["7d"]
    assert _filters(page.url) == ["country,is,FR"]
    await context.close()


@pytest.mark.browser
async def test_period_comparison_shows_the_change_and_the_previous_line(
    stack: Stack, browser: Browser
) -> None:
    tenant = await stack.tenant("OverviewCompare")
    # Noon and 11:00 UTC eight days ago: one day whatever the time of the run.
    now = datetime.now(UTC)
    noon = now.replace(hour=12, minute=0, second=0, microsecond=0) - timedelta(days=8)
    eight_days = int((now - noon).total_seconds())
    visits = [
        # The previous 7 days: two visitors, four pageviews.
        Visit(visitor=1, pages=["/", "/a"], ago_s=eight_days),
        Visit(visitor=2, pages=["/", "/b"], ago_s=eight_days + 3600),
        # The last 7 days: three visitors, three pageviews.
        Visit(visitor=3, pages=["/"]),
        Visit(visitor=4, pages=["/"]),
        Visit(visitor=5, pages=["/"]),
    ]
    await _stored(stack, tenant, await _seed(stack, tenant, visits))

    context = await _signed_in(stack, browser, tenant)
    page = await context.new_page()
    problems = _watch(page)
    base = f"{stack.dashboard}/sites/{tenant.site.id}"
    await page.goto(f"{base}?period=7d")
    await expect(page.locator("#stat-visitors")).to_have_text("3")
    cards = page.locator(".ov-card")
    await expect(cards.filter(has=page.locator("#stat-visitors")).locator(".ov-change")).to_have_text(
        "↑ +50%"
    )
    await expect(cards.filter(has=page.locator("#stat-pageviews")).locator(".ov-change")).to_have_text(
        "↓ \u221225%"
    )
    # Every earlier visit saw two pages, every recent one a single page: bounce rate 0% → 100%.
    bounce = cards.filter(has=page.locator("#stat-bounce-rate")).locator(".ov-change")
    await expect(bounce).to_have_text("↑ +100 pp")
    await expect(bounce).to_have_class(re.compile(r"\bbad\b"))
    series = json.loads(await page.locator("#overview-series").text_content() or "{}")
    assert sum(v for v in series["previous_visitors"] if v) == 2
    assert sum(v for v in series["visitors"] if v) == 3

    # Today against an empty yesterday: new.
    await page.locator(".ov-periods a", has_text="Today").click()
    await expect(page.locator("#stat-visitors")).to_have_text("3")
    await expect(cards.filter(has=page.locator("#stat-visitors")).locator(".ov-change")).to_have_text("↑ new")

    # Comparison off, kept in the URL.
    await page.locator(".ov-compare").click()
    await expect(page).to_have_url(re.compile(r"compare=off"))
    await expect(page.locator(".ov-change")).to_have_count(0)

    # A custom range from the form: the day eight days ago holds the two earlier visitors.
    day = noon.date().isoformat()
    await page.locator(".ov-custom summary").click()
    await page.fill(".ov-range input[name=from]", day)
    await page.fill(".ov-range input[name=to]", day)
    await page.locator(".ov-range button").click()
    await expect(page.locator("#stat-visitors")).to_have_text("2")
    query = parse_qs(urlsplit(page.url).query)
    assert (query["period"], query["from"], query["to"], query["compare"]) == (
        ["custom"],
        [day],
        [day],
        ["off"],
    )
    await context.close()
    assert problems == []


async def test_a_custom_range_shows_those_days_only(stack: Stack) -> None:
    tenant = await stack.tenant("OverviewCustom")
    visits = [Visit(visitor=1, pages=["/old"], ago_s=3 * 24 * 3600), Visit(visitor=2, pages=["/now"])]
    await _stored(stack, tenant, await _seed(stack, tenant, visits))
    day = (datetime.now(UTC) - timedelta(days=3)).date().isoformat()
    async with _api_client(stack, tenant) as client:
        page = await client.get(
            f"/sites/{tenant.site.id}", params={"period": "custom", "from": day, "to": day}
        )
        assert page.status_code == 200
        assert re.search(r'id="stat-visitors"[^>]*>1<', page.text)
        assert "/old" in page.text
        assert "/now" not in page.text


async def test_a_goal_shows_its_conversion_rate(stack: Stack) -> None:
    tenant = await stack.tenant("OverviewGoals")
    await Goals(stack.engine).create(tenant.tenant_id, tenant.site.id, "Saw pricing", "page", "/pricing")
    await Goals(stack.engine).create(tenant.tenant_id, tenant.site.id, "Signed up", "event", "signup")
    visits = [
        Visit(visitor=1, pages=["/", "/pricing"], events=["signup"]),
        Visit(visitor=2, pages=["/pricing"]),
        Visit(visitor=3, pages=["/"]),
        Visit(visitor=4, pages=["/docs"]),
    ]
    await _stored(stack, tenant, await _seed(stack, tenant, visits))
    async with _api_client(stack, tenant) as client:
        page = await client.get(f"/sites/{tenant.site.id}", params={"period": "today"})
        goals = page.text[page.text.index('id="panel-goals"') :]
        rows = re.findall(
            r'class="ov-text">([^<]*)<.*?"ov-num"[^>]*>(\d+)<.*?"ov-num">(\d+)<.*?"ov-num">([^<]*)<',
            goals,
            re.S,
        )
        assert rows[:2] == [("Saw pricing", "2", "2", "50%"), ("Signed up", "1", "1", "25%")]
        events = page.text[page.text.index('id="panel-events"') :]
        assert re.search(r'class="ov-text">signup<', events)
        assert 'class="ov-text">pageview<' not in events


async def test_a_panel_exports_as_csv_with_formulas_defused(stack: Stack) -> None:
    tenant = await stack.tenant("OverviewCsv")
    visits = [
        Visit(visitor=1, pages=["/a"], events=['=HYPERLINK("http://evil.example")', "@SUM(1)"], country="DE"),
        Visit(visitor=2, pages=["/a"], events=["-2+3", "+1", "plain"], country="FR"),
        Visit(visitor=3, pages=["/b"], country="DE"),
    ]
    await _stored(stack, tenant, await _seed(stack, tenant, visits))
    async with _api_client(stack, tenant) as client:
        answer = await client.get(f"/sites/{tenant.site.id}/export/events.csv", params={"period": "today"})
        assert answer.status_code == 200, answer.text
        assert answer.headers["content-type"].startswith("text/csv")
        assert re.fullmatch(
            r'attachment; filename="overviewcsv-site-events-[\d-]+\.csv"',
            answer.headers["content-disposition"],
        )
        rows = list(csv.reader(io.StringIO(answer.text)))
        assert rows[0] == ["event", "visitors", "events"]
        assert sorted(rows[1:]) == sorted(
            [
                ['\'=HYPERLINK("http://evil.example")', "1", "1"],
                ["'@SUM(1)", "1", "1"],
                ["'-2+3", "1", "1"],
                ["'+1", "1", "1"],
                ["plain", "1", "1"],
            ]
        )
        # The same filters as the page: Germany's pages only.
        pages = await client.get(
            f"/sites/{tenant.site.id}/export/pages.csv", params={"period": "today", "f": "country,is,DE"}
        )
        assert list(csv.reader(io.StringIO(pages.text))) == [
            ["page", "visitors", "pageviews"],
            ["/a", "1", "1"],
            ["/b", "1", "1"],
        ]
        assert (await client.get(f"/sites/{tenant.site.id}/export/nope.csv")).status_code == 404


async def test_bad_filters_and_periods_are_refused_with_the_reason(stack: Stack) -> None:
    tenant = await stack.tenant("OverviewRefusals")
    site = tenant.site.id
    cases = [
        ({"f": "nope,is,x"}, "unknown dimension &#39;nope&#39;"),
        ({"f": "page,equals,/x"}, "unknown op &#39;equals&#39;"),
        ({"f": "page"}, "is not dimension,op,value"),
        ({"f": "page,matches,(unclosed"}, "invalid regular expression"),
        ({"f": "page,is," + "x" * 3000}, "at most 2048"),
        ({"f": ["page,is,/a"] * 11}, "at most 10 may be combined"),
        ({"f": "goal,is,No such goal"}, "this site has no goal named"),
        ({"period": "forever"}, "unknown period &#39;forever&#39;"),
        ({"period": "custom", "from": "2025-02-30", "to": "2025-03-01"}, "is not a date"),
        (
            {"period": "custom", "from": "2025-03-02", "to": "2025-03-01"},
            "ends (2025-03-01) before it starts",
        ),
        ({"compare": "maybe"}, "compare is on or off"),
    ]
    async with _api_client(stack, tenant) as client:
        for params, reason in cases:
            answer = await client.get(f"/sites/{site}", params=params)
            assert answer.status_code == 400, (params, answer.status_code)
            assert reason in answer.text, (params, answer.text[:2000])
            # The panel page and the export say the same.
            panel = await client.get(f"/sites/{site}/panels/pages", params=params)
            assert panel.status_code == 400
            export = await client.get(f"/sites/{site}/export/pages.csv", params=params)
            assert export.status_code == 400
        assert (await client.get(f"/sites/{site}/panels/nope")).status_code == 404


async def test_the_detail_page_lists_more_than_ten_rows(stack: Stack) -> None:
    tenant = await stack.tenant("OverviewMore")
    visits = [Visit(visitor=i, pages=[f"/page-{i:02d}"]) for i in range(14)]
    await _stored(stack, tenant, await _seed(stack, tenant, visits))
    async with _api_client(stack, tenant) as client:
        page = await client.get(f"/sites/{tenant.site.id}", params={"period": "today"})
        more = f'href="/sites/{tenant.site.id}/panels/pages?period=today"'
        assert more in page.text
        detail = await client.get(f"/sites/{tenant.site.id}/panels/pages", params={"period": "today"})
        assert detail.status_code == 200
        assert len(re.findall(r'class="ov-text">/page-\d\d<', detail.text)) == 14


@pytest.mark.browser
async def test_script_payloads_in_paths_and_referrers_render_as_text(stack: Stack, browser: Browser) -> None:
    tenant = await stack.tenant("OverviewXss")
    site = tenant.site.id
    payloads = ["<script>alert(1)</script>", '"><img src=x onerror=alert(1)>']
    async with httpx.AsyncClient(base_url=stack.collector, headers=BROWSER) as collector:
        for i, payload in enumerate(payloads):
            beacon = {
                "s": site,
                "u": f"https://xss.example/{payload}",
                "r": f"https://ref{i}.example/{payload}",
            }
            sent = await collector.post(
                "/api/event", content=json.dumps(beacon), headers={"x-forwarded-for": f"198.51.100.{20 + i}"}
            )
            assert sent.status_code == 202, sent.text
    assert await stack.counts(tenant, {"pageviews": 2}) == {"pageviews": 2}

    context = await _signed_in(stack, browser, tenant)
    page = await context.new_page()
    problems = _watch(page)
    await page.goto(f"{stack.dashboard}/sites/{site}?period=today")
    await page.locator("label[for=ov-tab-pages]").click()
    texts = await page.locator("#panel-pages .ov-text").all_text_contents()
    assert sorted(texts) == sorted(f"/{p}" for p in payloads), texts
    await page.locator("label[for=ov-tab-referrers]").click()
    referrers = await page.locator("#panel-referrers .ov-text").all_text_contents()
    assert sorted(referrers) == sorted(f"https://ref{i}.example/{p}" for i, p in enumerate(payloads)), (
        referrers
    )
    # Filtering by a payload shows it as text in the chip, and the URL carries it encoded.
    await page.locator("label[for=ov-tab-pages]").click()
    await page.locator("#panel-pages .ov-label", has_text="onerror").click()
    await expect(page.locator(".ov-chip-value")).to_have_text(f"/{payloads[1]}")
    await expect(page.locator("#stat-pageviews")).to_have_text("1")
    assert await page.locator("img[src=x]").count() == 0
    assert await page.locator("#overview script:not([type])").count() == 0
    await context.close()
    assert problems == []


def _traffic(rng: random.Random, count: int, first_id: int, start_s: int, days: int) -> list[Visit]:
    """Visits spread over `days` days back from `start_s` seconds ago, weighted like real traffic."""
    referrers = [
        ("https://www.google.com/search?q=analytics", 8),
        ("", 6),
        ("https://news.ycombinator.com/item?id=42", 4),
        ("https://duckduckgo.com/", 2),
        ("https://twitter.com/someone/status/1", 2),
        ("https://github.com/pulse/pulse", 1),
    ]
    countries = [
        ("US", 9),
        ("DE", 6),
        ("GB", 4),
        ("FR", 3),
        ("NL", 2),
        ("JP", 2),
        ("BR", 1),
        ("IN", 2),
        ("CA", 1),
    ]
    agents = [(USER_AGENT, 6), (PHONE_UA, 3), (FIREFOX_UA, 2)]
    paths = [
        ("/", 10),
        ("/pricing", 5),
        ("/docs", 4),
        ("/blog/real-time-analytics", 3),
        ("/docs/install", 2),
        ("/about", 1),
    ]

    def pick(options: list[tuple[str, int]]) -> str:
        return rng.choices([o for o, _ in options], [w for _, w in options])[0]

    visits = []
    for i in range(count):
        # More visits on recent days, and in the afternoon.
        day = min(int(rng.expovariate(0.35)), days - 1)
        ago = start_s + day * 86400 + int(rng.triangular(0, 86400 - 600, 30000))
        pages = [pick(paths) for _ in range(rng.choice([1, 1, 1, 2, 3, 4]))]
        visits.append(
            Visit(
                visitor=first_id + i,
                pages=pages,
                country=pick(countries),
                referrer=pick(referrers),
                user_agent=pick(agents),
                ago_s=ago,
                events=["signup"] if rng.random() < 0.12 else [],
                query="utm_source=newsletter&utm_medium=email&utm_campaign=launch"
                if rng.random() < 0.15
                else "",
            )
        )
    return visits


@pytest.mark.browser
async def test_screenshots_at_desktop_and_phone_width(stack: Stack, browser: Browser) -> None:
    tenant = await stack.tenant("Acme")
    await Goals(stack.engine).create(tenant.tenant_id, tenant.site.id, "Visited pricing", "page", "/pricing")
    visits = _traffic(random.Random(6), 140, first_id=10_000, start_s=120, days=7)
    # The previous week, a little quieter, for the comparison line.
    visits += _traffic(random.Random(7), 100, first_id=20_000, start_s=7 * 86400 + 3600, days=7)
    await _stored(stack, tenant, await _seed(stack, tenant, visits))

    for name, width in (("overview.png", 1280), ("overview-phone.png", 375)):
        context = await _signed_in(stack, browser, tenant, width=width)
        page = await context.new_page()
        problems = _watch(page)
        await page.goto(f"{stack.dashboard}/sites/{tenant.site.id}?period=7d")
        await expect(page.locator("#overview-chart canvas")).to_have_count(1)
        await expect(page.locator("#live-status")).to_have_text("live")
        overflow = await page.evaluate(
            "document.documentElement.scrollWidth - document.documentElement.clientWidth"
        )
        assert overflow == 0, f"{name}: the page is {overflow} px wider than the screen"
        await page.screenshot(path=str(artifact(name)), full_page=True)
        if width < 600:
            await page.screenshot(path=str(artifact("overview-phone-top.png")))
        await context.close()
        assert problems == []


def test_a_view_slow_to_read_refreshes_on_a_timer_spaced_by_its_time() -> None:
    assert refresh_timer_s(1.99, 2.0) is None
    assert refresh_timer_s(2.0, 2.0) == 60
    assert refresh_timer_s(7.52, 2.0) == 76


async def test_a_slow_view_says_it_updates_on_a_timer_and_a_quick_one_after_ticks(stack: Stack) -> None:
    tenant = await stack.tenant("SlowView")
    # Every view counts as slow to this dashboard.
    settings = msgspec.structs.replace(stack.settings, overview_slow_s=0.0)
    resources = Resources(settings)
    try:
        async with (
            serving(create_dashboard_app(resources), free_port()) as slow_url,
            httpx.AsyncClient(base_url=slow_url, follow_redirects=True, timeout=30) as slow,
            httpx.AsyncClient(base_url=stack.dashboard, follow_redirects=True, timeout=30) as quick,
        ):
            for client in (slow, quick):
                await login(client, tenant.email, tenant.password)
            slow_page = await slow.get(f"/sites/{tenant.site.id}", params={"period": "24h"})
            quick_page = await quick.get(f"/sites/{tenant.site.id}", params={"period": "24h"})
    finally:
        await resources.close()
    assert slow_page.status_code == quick_page.status_code == 200
    assert 'hx-trigger="every 60s"' in slow_page.text
    assert 'id="slow-refresh"' in slow_page.text
    assert "updates every\n    60 seconds rather than live" in slow_page.text
    assert 'hx-trigger="pulse:refresh from:body"' in quick_page.text
    assert 'id="slow-refresh"' not in quick_page.text
