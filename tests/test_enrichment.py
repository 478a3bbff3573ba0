"""Enrichment in the rollup worker: User-Agent → browser/OS/device, referrer + tags → source/channel."""

from __future__ import annotations

import asyncio
import random
import string
from typing import Any

import httpx
import msgspec
import pytest

from pulse.enrichment.bots import is_bot
from pulse.enrichment.event import COLUMNS as ENRICHMENT_COLUMNS
from pulse.enrichment.event import enrich
from pulse.enrichment.referrer import (
    DIRECT,
    EMAIL,
    INTERNAL,
    PAID,
    REFERRAL,
    SEARCH,
    SOCIAL,
    TrafficSource,
    classify_host,
    traffic_source,
)
from pulse.enrichment.useragent import UserAgentInfo, parse_user_agent
from pulse.enrichment.utm import MAX_TAG, campaign_tags
from pulse.events.message import EventV1
from pulse.rollup.rows import COLUMNS, to_row
from pulse.warehouse.client import Warehouse
from stack import Stack

CHROME_WINDOWS = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/124.0.0.0 Safari/537.36"
)
SAFARI_IPHONE = (
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) "
    "Version/17.4.1 Mobile/15E148 Safari/604.1"
)
SAFARI_IPAD = (
    "Mozilla/5.0 (iPad; CPU OS 16_6 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) "
    "Version/16.6 Mobile/15E148 Safari/604.1"
)
SAFARI_MAC = (
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) "
    "Version/17.4 Safari/605.1.15"
)
FIREFOX_LINUX = "Mozilla/5.0 (X11; Linux x86_64; rv:125.0) Gecko/20100101 Firefox/125.0"
FIREFOX_ANDROID_TABLET = "Mozilla/5.0 (Android 13; Tablet; rv:125.0) Gecko/125.0 Firefox/125.0"
EDGE_WINDOWS = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/124.0.0.0 Safari/537.36 Edg/124.0.2478.51"
)
SAMSUNG_TABLET = (
    "Mozilla/5.0 (Linux; Android 13; SM-X700) AppleWebKit/537.36 (KHTML, like Gecko) "
    "SamsungBrowser/24.0 Chrome/117.0.0.0 Safari/537.36"
)
CHROME_ANDROID_PHONE = (
    "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/124.0.0.0 Mobile Safari/537.36"
)
GOOGLEBOT = "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)"
GOOGLEBOT_SMARTPHONE = (
    "Mozilla/5.0 (Linux; Android 6.0.1; Nexus 5X Build/MMB29P) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/124.0.6367.201 Mobile Safari/537.36 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)"
)
CHROMECAST = (
    "Mozilla/5.0 (X11; Linux armv7l) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/110.0.0.0 "
    "Safari/537.36 CrKey/1.56.500000 DeviceType/AndroidTV"
)
FIRE_TV = (
    "Mozilla/5.0 (Linux; Android 9; AFTMM Build/PS7633; wv) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Version/4.0 Chrome/120.0.6099.230 Mobile Safari/537.36"
)
XBOX = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64; Xbox; Xbox One) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/120.0.0.0 Safari/537.36 Edge/44.18363.8131"
)
CHROME_IPHONE = (
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) "
    "CriOS/124.0.6367.88 Mobile/15E148 Safari/604.1"
)
CHROME_OS = (
    "Mozilla/5.0 (X11; CrOS x86_64 14541.0.0) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/124.0.0.0 Safari/537.36"
)
HEADLESS_CHROME = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "HeadlessChrome/124.0.0.0 Safari/537.36"
)
IE_WINDOWS_7_TABLET_PC = (
    "Mozilla/5.0 (compatible; MSIE 10.0; Windows NT 6.1; Trident/6.0; SLCC2; .NET CLR 2.0.50727; "
    "Media Center PC 6.0; Tablet PC 2.0)"
)


@pytest.mark.parametrize(
    ("user_agent", "expected"),
    [
        (CHROME_WINDOWS, UserAgentInfo("Chrome", "124", "Windows", "10", "desktop")),
        (SAFARI_IPHONE, UserAgentInfo("Safari", "17", "iOS", "17", "mobile")),
        (SAFARI_IPAD, UserAgentInfo("Safari", "16", "iOS", "16", "tablet")),
        (SAFARI_MAC, UserAgentInfo("Safari", "17", "macOS", "10.15", "desktop")),
        (FIREFOX_LINUX, UserAgentInfo("Firefox", "125", "Linux", "", "desktop")),
        (FIREFOX_ANDROID_TABLET, UserAgentInfo("Firefox", "125", "Android", "13", "tablet")),
        (EDGE_WINDOWS, UserAgentInfo("Edge", "124", "Windows", "10", "desktop")),
        (SAMSUNG_TABLET, UserAgentInfo("Samsung Internet", "24", "Android", "13", "tablet")),
        (CHROME_ANDROID_PHONE, UserAgentInfo("Chrome", "124", "Android", "14", "mobile")),
        (IE_WINDOWS_7_TABLET_PC, UserAgentInfo("IE", "10", "Windows", "7", "desktop")),
        (CHROME_IPHONE, UserAgentInfo("Chrome", "124", "iOS", "17", "mobile")),
        (CHROME_OS, UserAgentInfo("Chrome", "124", "Chrome OS", "14541", "desktop")),
        (CHROMECAST, UserAgentInfo("Chrome", "110", "Chromecast Linux", "1", "other")),
        (FIRE_TV, UserAgentInfo("Chrome WebView", "120", "Android", "9", "other")),
        (XBOX, UserAgentInfo("Edge", "44", "Windows", "10", "other")),
    ],
)
def test_user_agents_of_real_browsers(user_agent: str, expected: UserAgentInfo) -> None:
    assert parse_user_agent(user_agent) == expected


@pytest.mark.parametrize(
    "user_agent", [GOOGLEBOT, GOOGLEBOT_SMARTPHONE, "curl/8.7.1", "python-requests/2.32"]
)
def test_bots_are_a_device_type_that_agrees_with_is_bot(user_agent: str) -> None:
    assert parse_user_agent(user_agent).device == "bot"
    assert is_bot(user_agent)


def test_googlebot_is_named() -> None:
    assert parse_user_agent(GOOGLEBOT)[:2] == ("Googlebot", "2")


@pytest.mark.parametrize(
    "user_agent",
    [
        "",
        " ",
        "garbage",
        "\x00\x01\x02",
        "\ud800 lone surrogate",
        "Mozilla/5.0 (" * 10_000,
        "A" * 100_000,
        "".join(random.Random(7).choices(string.printable, k=5000)),
    ],
)
def test_malformed_user_agents_never_raise(user_agent: str) -> None:
    info = parse_user_agent(user_agent)
    assert isinstance(info, UserAgentInfo)
    assert info.device in {"desktop", "mobile", "tablet", "bot", "other"}
    assert all(isinstance(v, str) for v in info)


def test_empty_user_agent_is_a_bot_like_the_collector_says() -> None:
    assert parse_user_agent("") == UserAgentInfo("", "", "", "", "bot")


def test_user_agents_are_cached() -> None:
    parse_user_agent.cache_clear()
    parse_user_agent(CHROME_WINDOWS)
    parse_user_agent(CHROME_WINDOWS)
    assert parse_user_agent.cache_info().hits == 1


PAGE = "shop.example"


@pytest.mark.parametrize(
    ("referrer", "expected"),
    [
        ("", ("", DIRECT)),
        ("https://www.google.com/", ("Google", SEARCH)),
        ("https://www.google.co.uk/", ("Google", SEARCH)),
        ("https://www.google.com.br/search?q=x", ("Google", SEARCH)),
        ("https://www.bing.com/search?q=pulse", ("Bing", SEARCH)),
        ("https://duckduckgo.com/", ("DuckDuckGo", SEARCH)),
        ("https://yandex.ru/", ("Yandex", SEARCH)),
        ("https://l.facebook.com/l.php?u=x", ("Facebook", SOCIAL)),
        ("https://m.facebook.com/", ("Facebook", SOCIAL)),
        ("https://t.co/abc", ("X", SOCIAL)),
        ("https://twitter.com/someone", ("X", SOCIAL)),
        ("https://x.com/someone/status/1", ("X", SOCIAL)),
        ("https://www.linkedin.com/feed/", ("LinkedIn", SOCIAL)),
        ("https://old.reddit.com/r/python/", ("Reddit", SOCIAL)),
        ("https://news.ycombinator.com/item?id=1", ("Hacker News", SOCIAL)),
        ("https://www.youtube.com/watch?v=1", ("YouTube", SOCIAL)),
        ("https://www.pinterest.de/pin/1", ("Pinterest", SOCIAL)),
        ("https://mail.google.com/mail/u/0/", ("Gmail", EMAIL)),
        ("https://outlook.live.com/mail/0/", ("Outlook", EMAIL)),
        ("https://someone.substack.com/p/post", ("Substack", EMAIL)),
        ("https://webmail.example.net/", ("webmail.example.net", EMAIL)),
        ("https://www.googleadservices.com/pagead/aclk", ("Google Ads", PAID)),
        ("https://github.com/org/repo", ("GitHub", REFERRAL)),
        ("https://news.google.com/articles/1", ("Google News", REFERRAL)),
        ("https://www.blog.example/post", ("blog.example", REFERRAL)),
        ("https://user:pw@Blog.Example:8443/post", ("blog.example", REFERRAL)),
        ("https://google.example.com/", ("google.example.com", REFERRAL)),
        ("http://192.0.2.1/", ("192.0.2.1", REFERRAL)),
        ("https://shop.example/cart", ("shop.example", INTERNAL)),
        ("https://www.shop.example/cart", ("shop.example", INTERNAL)),
        ("HTTPS://SHOP.EXAMPLE", ("shop.example", INTERNAL)),
        ("android-app://com.google.android.gm/", ("Gmail", EMAIL)),
        ("android-app://com.google.android.googlequicksearchbox/https/www.google.com", ("Google", SEARCH)),
        ("android-app://com.linkedin.android", ("LinkedIn", SOCIAL)),
        ("android-app://org.example.reader/", ("org.example.reader", REFERRAL)),
        ("about:blank", ("", DIRECT)),
        ("chrome-extension://abcdef/page.html", ("", DIRECT)),
        ("file:///home/me/page.html", ("", DIRECT)),
        ("not a url", ("", DIRECT)),
        ("https://", ("", DIRECT)),
        ("https://<script>/", ("", DIRECT)),
    ],
)
def test_referrer_source_and_channel(referrer: str, expected: tuple[str, str]) -> None:
    assert traffic_source(referrer, PAGE) == TrafficSource(*expected)


def test_internal_only_when_the_hosts_match() -> None:
    assert traffic_source("https://blog.shop.example/", PAGE).channel == REFERRAL
    assert traffic_source("https://shop.example/", "").channel == REFERRAL
    assert traffic_source("https://www.shop.example/", "www.shop.example").channel == INTERNAL


@pytest.mark.parametrize(
    ("referrer", "query", "source", "channel"),
    [
        ("", "utm_source=newsletter&utm_medium=email", "Newsletter", EMAIL),
        ("", "utm_source=weekly-digest&utm_medium=e-mail", "weekly-digest", EMAIL),
        ("https://www.google.com/", "utm_source=google&utm_medium=cpc", "Google", PAID),
        ("https://www.google.com/", "utm_medium=ppc", "Google", PAID),
        ("", "utm_source=facebook&utm_medium=paid_social", "Facebook", PAID),
        ("https://l.facebook.com/", "utm_source=fb&utm_medium=social", "Facebook", SOCIAL),
        ("", "utm_source=Twitter&utm_medium=social-media", "X", SOCIAL),
        ("", "utm_source=news.ycombinator.com", "Hacker News", SOCIAL),
        ("", "utm_source=partner-site", "partner-site", REFERRAL),
        ("https://partner.example/", "utm_source=partner", "partner", REFERRAL),
        ("https://www.bing.com/", "utm_source=spring&utm_medium=banner-xyz", "spring", SEARCH),
        # A tagged link wins over a same-site referrer.
        ("https://shop.example/", "utm_source=footer&utm_medium=email", "footer", EMAIL),
        # Click ids are paid, named after their network when utm_source is absent.
        ("https://www.google.com/", "gclid=abc", "Google", PAID),
        ("", "msclkid=abc&x=1", "Bing", PAID),
        # fbclid is on organic Facebook links too: the referrer decides.
        ("https://l.facebook.com/", "fbclid=IwAR0", "Facebook", SOCIAL),
        ("", "utm_source=spring-sale&gclid=abc", "spring-sale", PAID),
        # A recognised medium beats a click id.
        ("", "utm_source=mailchimp&utm_medium=email&fbclid=1", "mailchimp", EMAIL),
        # An empty click id is no click id.
        ("https://github.com/", "gclid=", "GitHub", REFERRAL),
    ],
)
def test_campaign_tags_override_the_referrer(referrer: str, query: str, source: str, channel: str) -> None:
    result = traffic_source(referrer, PAGE, query)
    assert (result.source, result.channel) == (source, channel)


def test_utm_values_are_kept_decoded_and_bounded() -> None:
    query = (
        "utm_source=Spring%20News&utm_medium=email&utm_campaign=launch+2025"
        f"&utm_content=hero&utm_term={'x' * 5000}&utm_source=second&page=2"
    )
    result = traffic_source("", PAGE, query)
    assert result[2:6] == ("Spring News", "email", "launch 2025", "hero")
    assert result.utm_term == "x" * MAX_TAG
    assert traffic_source("", PAGE, "page=2&q=shoes") == TrafficSource("", DIRECT)


@pytest.mark.parametrize(
    "query",
    ["utm_", "utm_source", "utm_source=", "%%%utm_source=%zz", "&&==utm_x=1", "gclid", "utm_source=\x00"],
)
def test_malformed_queries_never_raise(query: str) -> None:
    assert isinstance(campaign_tags(query), tuple)
    assert traffic_source("", PAGE, query).channel in {DIRECT, REFERRAL, PAID}


@pytest.mark.parametrize(
    "referrer",
    [
        "https://" + "a" * 300 + ".example/",
        "https://example.com/" + "x" * 100_000,
        "https://[::1]:8080/",
        "https://[not-ipv6/",
        "http://exa mple.com/",
        "://no-scheme",
        "\ud800",
        "".join(random.Random(11).choices(string.printable, k=5000)),
    ],
)
def test_malformed_referrers_never_raise(referrer: str) -> None:
    result = traffic_source(referrer, PAGE, "")
    assert result.channel in {DIRECT, REFERRAL}


def test_source_table_is_cached_by_host() -> None:
    classify_host.cache_clear()
    traffic_source("https://www.google.com/search?q=a", PAGE)
    traffic_source("https://www.google.com/search?q=b", PAGE)
    assert classify_host.cache_info().hits == 1


def _event(**fields: Any) -> EventV1:
    base: dict[str, Any] = {
        "event_id": b"\x01" * 16,
        "tenant_id": "t",
        "site_id": "site",
        "ts_ms": 1_700_000_000_000,
        "name": "pageview",
        "url": "https://shop.example/p?utm_source=newsletter&utm_medium=email&utm_campaign=spring",
        "referrer": "https://mail.google.com/",
        "visitor_id": 7,
        "user_agent": SAFARI_IPHONE,
        "screen_width": 390,
        "props": {},
    }
    return EventV1(**{**base, **fields})


def test_to_row_matches_columns_and_carries_the_enrichment() -> None:
    row = to_row(_event(), 3, 42)
    assert len(row) == len(COLUMNS) == len(set(COLUMNS))
    named = dict(zip(COLUMNS, row, strict=True))
    assert {k: named[k] for k in ENRICHMENT_COLUMNS} == {
        "browser": "Safari",
        "browser_version": "17",
        "os": "iOS",
        "os_version": "17",
        "device": "mobile",
        "source": "Newsletter",
        "channel": EMAIL,
        "utm_source": "newsletter",
        "utm_medium": "email",
        "utm_campaign": "spring",
        "utm_content": "",
        "utm_term": "",
    }
    assert (named["hostname"], named["pathname"]) == ("shop.example", "/p")


def test_enrich_of_a_bare_event() -> None:
    values = enrich(_event(url="https://shop.example/", referrer="", user_agent=""), "shop.example", "")
    assert dict(zip(ENRICHMENT_COLUMNS, values, strict=True)) == {
        **dict.fromkeys(ENRICHMENT_COLUMNS, ""),
        "device": "bot",
        "channel": DIRECT,
    }


async def test_enriched_columns_reach_clickhouse(stack: Stack) -> None:
    """Through the real collector, Kafka, the rollup worker and migration 0007."""
    tenant = await stack.tenant("Enrich")
    beacon = {
        "s": tenant.site.id,
        "u": f"https://{tenant.site.domain}/pricing?utm_source=hn&utm_campaign=launch",
        "r": "https://news.ycombinator.com/item?id=1",
    }
    async with httpx.AsyncClient(base_url=stack.collector, headers={"user-agent": EDGE_WINDOWS}) as client:
        response = await client.post("/api/event", content=msgspec.json.encode(beacon))
    assert response.status_code == 202

    warehouse = Warehouse(stack.settings.effective_clickhouse_url, stack.settings.clickhouse_database)
    sql = (
        "SELECT browser, browser_version, os, os_version, device, source, channel,"
        " utm_source, utm_medium, utm_campaign, utm_content, utm_term"
        " FROM events WHERE site_id = {site:String}"
    )

    def query() -> list[tuple[Any, ...]]:
        return list(warehouse.client.query(sql, parameters={"site": tenant.site.id}).result_rows)

    rows: list[tuple[Any, ...]] = []
    for _ in range(300):
        rows = await warehouse.run(query)
        if rows:
            break
        await asyncio.sleep(0.1)
    assert rows == [
        ("Edge", "124", "Windows", "10", "desktop", "Hacker News", SOCIAL, "hn", "", "launch", "", "")
    ]
