"""Beacons through the real collector reach ClickHouse rollups, the stats API, the page and SSE."""

from __future__ import annotations

import asyncio
import re

import httpx
import msgspec

from dashboard_client import login
from stack import Stack
from visitor import BROWSER

SINGLES = 1000
BATCHES = 100
BATCH_SIZE = 20
CUSTOM_EVERY = 10
VISITORS = 400


def _beacon(site: str, i: int) -> dict[str, object]:
    if i % CUSTOM_EVERY == 0:
        return {"s": site, "u": f"https://shop.example/p/{i % 7}", "n": "signup", "p": {"plan": "pro"}}
    return {"s": site, "u": f"https://shop.example/p/{i % 7}?utm_source=news", "r": "https://www.google.com/"}


def _headers(i: int) -> dict[str, str]:
    # The collector trusts X-Forwarded-For from loopback, so each visitor is a distinct address.
    return {
        "content-type": "text/plain",
        "x-forwarded-for": f"198.51.100.{i % VISITORS // 2}",
        "user-agent": f"Mozilla/5.0 test-{i % 2}",
    }


async def test_events_are_counted_exactly_in_api_page_and_live_stream(stack: Stack) -> None:
    tenant = await stack.tenant("Exact")
    site = tenant.site.id
    token = await stack.token(tenant)
    bearer = {"authorization": f"Bearer {token}"}
    total = SINGLES + BATCHES * BATCH_SIZE
    custom = sum(1 for i in range(total) if i % CUSTOM_EVERY == 0)

    async with httpx.AsyncClient(base_url=stack.collector, timeout=30, headers=BROWSER) as collector:
        gate = asyncio.Semaphore(24)

        async def send_single(i: int) -> int:
            async with gate:
                body = msgspec.json.encode(_beacon(site, i))
                return (await collector.post("/api/event", content=body, headers=_headers(i))).status_code

        async def send_batch(b: int) -> int:
            async with gate:
                first = SINGLES + b * BATCH_SIZE
                body = msgspec.json.encode([_beacon(site, i) for i in range(first, first + BATCH_SIZE)])
                return (
                    await collector.post("/api/events", content=body, headers=_headers(first))
                ).status_code

        statuses = await asyncio.gather(
            *(send_single(i) for i in range(SINGLES)), *(send_batch(b) for b in range(BATCHES))
        )
    assert set(statuses) == {202}

    async with httpx.AsyncClient(base_url=stack.dashboard, headers=bearer, timeout=30) as api:

        async def counted() -> tuple[int, int]:
            body = (await api.get(f"/api/v1/sites/{site}/aggregate", params={"period": "24h"})).json()
            return body["events"], body["pageviews"]

        assert await stack.wait_for(counted, (total, total - custom)) == (total, total - custom)
        aggregate = (await api.get(f"/api/v1/sites/{site}/aggregate", params={"period": "30m"})).json()
        assert aggregate["pageviews"] == total - custom
        # Batches share one visitor per batch (one X-Forwarded-For per request).
        singles_visitors = len({(i % VISITORS // 2, i % 2) for i in range(SINGLES)})
        batch_visitors = {
            ((SINGLES + b * BATCH_SIZE) % VISITORS // 2, (SINGLES + b * BATCH_SIZE) % 2)
            for b in range(BATCHES)
        }
        all_visitors = {(i % VISITORS // 2, i % 2) for i in range(SINGLES)} | batch_visitors
        assert aggregate["visitors"] == len(all_visitors) >= singles_visitors

        series = (await api.get(f"/api/v1/sites/{site}/timeseries", params={"period": "30m"})).json()
        assert series["interval"] == "minute"
        assert len(series["points"]) == 30
        assert sum(p["events"] for p in series["points"]) == total

    async with httpx.AsyncClient(base_url=stack.dashboard, timeout=30) as browser:
        assert (await login(browser, tenant.email, tenant.password)).status_code == 303
        page = await browser.get(f"/sites/{site}", params={"period": "24h"})
        assert page.status_code == 200
        # The card may show a rounded figure (2.7k); its title holds the exact count.
        card = re.search(r'title="([0-9,]+)" id="stat-pageviews"', page.text)
        assert card, "the page has a pageviews card"
        assert int(card.group(1).replace(",", "")) == total - custom


async def test_live_stream_pushes_a_tick_when_an_event_arrives(stack: Stack) -> None:
    tenant = await stack.tenant("Live")
    site = tenant.site.id
    async with httpx.AsyncClient(base_url=stack.dashboard, timeout=30) as browser:
        await login(browser, tenant.email, tenant.password)
        async with browser.stream("GET", f"/sites/{site}/live") as stream:
            assert stream.headers["content-type"].startswith("text/event-stream")
            lines = stream.aiter_lines()
            assert await anext(lines) == "event: ready"
            async with httpx.AsyncClient(base_url=stack.collector, headers=BROWSER) as collector:
                beacon = msgspec.json.encode({"s": site, "u": "https://live.example/"})
                assert (await collector.post("/api/event", content=beacon)).status_code == 202
            tick = await asyncio.wait_for(_next_tick(lines), timeout=15)
    assert tick["site_id"] == site
    assert tick["events"] == 1
    assert tick["pageviews"] == 1


async def _next_tick(lines: object) -> dict[str, object]:
    event = None
    async for line in lines:  # type: ignore[attr-defined]
        if line.startswith("event: "):
            event = line.removeprefix("event: ")
        elif line.startswith("data: ") and event == "tick":
            return dict(msgspec.json.decode(line.removeprefix("data: ")))
    raise AssertionError("stream ended without a tick")


async def test_engagement_pings_are_stored_but_not_counted_as_events(stack: Stack) -> None:
    tenant = await stack.tenant("Engaged")
    site = tenant.site.id
    async with httpx.AsyncClient(base_url=stack.collector, headers=BROWSER) as collector:
        for body in (
            {"s": site, "u": "https://e.example/read"},
            {"s": site, "u": "https://e.example/read", "n": "engagement", "e": 12_000},
            {"s": site, "u": "https://e.example/read", "n": "signup"},
        ):
            assert (await collector.post("/api/event", content=msgspec.json.encode(body))).status_code == 202
    assert await stack.counts(tenant, {"pageviews": 1, "events": 2}) == {"pageviews": 1, "events": 2}
