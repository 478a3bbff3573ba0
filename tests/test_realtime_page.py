"""The live view (/sites/{id}/realtime) and the SSE fan-out behind it, on the real stack and in Chromium."""

from __future__ import annotations

import asyncio
import re
import statistics
import time
from collections.abc import AsyncIterator

import httpx
import msgspec
import pytest
from playwright.async_api import Browser, Page, expect
from redis.asyncio import Redis

from artifacts import artifact
from dashboard_client import login
from pulse.live.hub import CLIENT_QUEUE, TickHub
from pulse.live.keys import recent_key, tick_channel
from pulse.telemetry.metrics import process_metrics
from pulse.tenancy import TenantScope
from stack import Stack, Tenant
from visitor import BROWSER

XSS_PATH = "/x/<script>alert(1)</script>"
LATENCY_BEACONS = 10
# Beacon sent (this process) → its row on screen (the page, in a requestAnimationFrame), median of
# LATENCY_BEACONS, both read from the machine's wall clock.
# The target is 1 s, and bench/dashboard_live.py measures it over 500 beacons. In the suite, on
# 2 cores shared with other work (load average 12), the median was 1.5-2.7 s, nearly all of it the
# worker's ClickHouse insert, which comes before the tick by design: the bound here is looser.
BEACON_TO_SCREEN_P50_MS = 4000
# Tick published → row on screen: the live view's own share (fan-out, SSE, DOM), 6-75 ms in those runs.
TICK_TO_SCREEN_P50_MS = 250


async def _beacon(collector: httpx.AsyncClient, site: str, path: str, **fields: object) -> None:
    body = msgspec.json.encode({"s": site, "u": f"https://rt.example{path}", **fields})
    response = await collector.post("/api/event", content=body)
    assert response.status_code == 202, response.text


async def _live_view(browser: Browser, stack: Stack, tenant: Tenant) -> Page:
    page = await browser.new_page(viewport={"width": 1280, "height": 900})
    await page.goto(f"{stack.dashboard}/login")
    await page.fill("input[name=email]", tenant.email)
    await page.fill("input[name=password]", tenant.password)
    await page.click("button[type=submit]")
    await expect(page).to_have_url(f"{stack.dashboard}/sites")
    await page.goto(f"{stack.dashboard}/sites/{tenant.site.id}/realtime")
    await expect(page.locator("#rt-status")).to_have_text("live")
    return page


@pytest.mark.browser
@pytest.mark.serial  # its latency medians would measure the other workers
async def test_the_live_view_shows_beacons_as_text_as_their_ticks_arrive(
    stack: Stack, browser: Browser
) -> None:
    tenant = await stack.tenant("Realtime")
    site = tenant.site.id
    page = await _live_view(browser, stack, tenant)
    dialogs: list[str] = []
    page.on("dialog", lambda dialog: dialogs.append(dialog.message))
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    await expect(page.locator("#rt-visitors")).to_have_text("0")
    await expect(page.locator("#rt-events")).to_have_text("0")

    sent: dict[str, float] = {}
    async with httpx.AsyncClient(base_url=stack.collector, headers=BROWSER) as collector:
        await _beacon(collector, site, XSS_PATH, r="https://news.ycombinator.com/item?id=1")
        await expect(page.locator(".rt-path").first).to_have_text(XSS_PATH, timeout=5_000)
        await _beacon(collector, site, "/pricing", n="Signup <b>now</b>", p={"plan": "pro"})
        await _beacon(collector, site, "/pricing", n="engagement", e=4000)
        for i in range(LATENCY_BEACONS):
            path = f"/latency/{i}"
            sent[path] = time.time() * 1000
            await _beacon(collector, site, path)
            await asyncio.sleep(0.3)

    await expect(page.locator(".rt-path").first).to_have_text(
        f"/latency/{LATENCY_BEACONS - 1}", timeout=5_000
    )
    await expect(page.locator("#rt-visitors")).to_have_text("1")
    # Every beacon but the engagement ping is an event on the chart and a row in the stream.
    await expect(page.locator("#rt-events")).to_have_text(str(LATENCY_BEACONS + 2))
    await expect(page.locator(".rt-row")).to_have_count(LATENCY_BEACONS + 2)
    await expect(page.locator(".rt-name", has_text="Signup <b>now</b>")).to_have_count(1)
    await expect(page.locator(".rt-meta").last).to_contain_text("Hacker News")
    # The payloads are text: nothing ran and no element came of them.
    assert await page.locator("#rt-stream script, #rt-stream b").count() == 0
    await expect(page.locator("#rt-freshness")).to_have_class(re.compile(r"\bfresh\b"))
    await expect(page.locator("#rt-freshness")).to_contain_text("s ago")

    arrivals = await page.evaluate("window.pulseLive.arrivals")
    shown = {path: a["shown_ms"] for a in arrivals for path in a["paths"]}
    beacon_to_screen = [shown[path] - sent_ms for path, sent_ms in sent.items()]
    tick_to_screen = [a["shown_ms"] - a["published_ms"] for a in arrivals]
    assert statistics.median(beacon_to_screen) < BEACON_TO_SCREEN_P50_MS, beacon_to_screen
    assert statistics.median(tick_to_screen) < TICK_TO_SCREEN_P50_MS, tick_to_screen

    await page.screenshot(path=str(artifact("live.png")), full_page=True)
    await page.set_viewport_size({"width": 375, "height": 800})
    await page.wait_for_timeout(300)
    assert await page.evaluate("document.documentElement.scrollWidth") <= 375
    await page.screenshot(path=str(artifact("live-375.png")), full_page=True)
    await page.close()
    assert dialogs == []
    assert errors == []


async def test_ticks_carry_the_visitor_count_and_the_newest_events_but_no_engagement_pings(
    stack: Stack,
) -> None:
    tenant = await stack.tenant("Ticked")
    site = tenant.site.id
    headers = {"authorization": f"Bearer {await stack.token(tenant)}"}
    async with (
        httpx.AsyncClient(base_url=stack.dashboard, headers=headers, timeout=30) as api,
        api.stream("GET", f"/api/v1/sites/{site}/stream") as stream,
    ):
        assert stream.headers["cache-control"] == "no-cache"
        assert stream.headers["x-accel-buffering"] == "no"
        ticks = _ticks(stream.aiter_lines())
        async with httpx.AsyncClient(base_url=stack.collector, headers=BROWSER) as collector:
            # One batch: a beacon batch is published as one, and counted in one worker batch.
            body = [
                {"s": site, "u": "https://rt.example/a", "r": "https://www.google.com/"},
                {"s": site, "u": "https://rt.example/a", "n": "engagement", "e": 1500},
                {"s": site, "u": "https://rt.example/b?utm_source=x", "n": "Download"},
            ]
            assert (await collector.post("/api/events", json=body)).status_code == 202
            seen: list[dict[str, object]] = []
            while sum(len(t["recent"]) for t in seen) < 2:
                seen.append(await asyncio.wait_for(anext(ticks), timeout=15))
    recent = sorted((e for t in seen for e in t["recent"]), key=lambda e: e["path"])
    assert [(e["name"], e["path"]) for e in recent] == [("pageview", "/a"), ("Download", "/b")]
    assert recent[0]["source"] == "Google"
    assert recent[0]["browser"] == "Chrome"
    assert recent[0]["device"] == "desktop"
    assert seen[-1]["visitors"] == 1
    assert sum(n for t in seen for _, n in t["seconds"]) == 2


async def _ticks(lines: AsyncIterator[str]) -> AsyncIterator[dict[str, object]]:
    event = None
    async for line in lines:
        if line.startswith("event: "):
            event = line.removeprefix("event: ")
        elif line.startswith("data: ") and event == "tick":
            yield msgspec.json.decode(line.removeprefix("data: "))


async def test_the_page_lists_events_from_clickhouse_once_redis_lost_its_list(stack: Stack) -> None:
    tenant = await stack.tenant("Restarted")
    site = tenant.site.id
    async with httpx.AsyncClient(base_url=stack.collector, headers=BROWSER) as collector:
        for path in ("/first", XSS_PATH):
            await _beacon(collector, site, path)
    await stack.counts(tenant, {"pageviews": 2})
    redis = Redis.from_url(stack.settings.redis_url)
    try:
        assert await redis.llen(recent_key(tenant.tenant_id, site)) == 2
        await redis.delete(recent_key(tenant.tenant_id, site))
    finally:
        await redis.aclose()
    async with httpx.AsyncClient(base_url=stack.dashboard, timeout=30) as client:
        await login(client, tenant.email, tenant.password)
        page = await client.get(f"/sites/{site}/realtime")
        partial = await client.get(f"/sites/{site}/realtime", headers={"hx-request": "true"})
    assert page.status_code == 200
    assert page.text.index("/x/&lt;script&gt;alert(1)&lt;/script&gt;") < page.text.index("/first")
    assert "<script>alert(1)" not in page.text
    assert 'id="rt-visitors"' in page.text
    assert partial.text.strip() == "1"


async def test_the_page_of_another_tenants_site_is_not_found(stack: Stack) -> None:
    mine, theirs = await stack.tenant("Looker"), await stack.tenant("Looked at")
    async with httpx.AsyncClient(base_url=stack.dashboard, timeout=30) as client:
        await login(client, mine.email, mine.password)
        response = await client.get(f"/sites/{theirs.site.id}/realtime")
    assert response.status_code == 404
    assert theirs.site.name not in response.text


async def test_a_client_that_stops_reading_is_dropped_while_the_others_share_one_frame(stack: Stack) -> None:
    tenant = await stack.tenant("Fanout")
    scope = TenantScope.of_user(tenant.tenant_id, "test", "viewer")
    redis = Redis.from_url(stack.settings.redis_url)
    hub = TickHub(redis, process_metrics(enabled=False))
    hub.start()
    try:
        for _ in range(500):
            if hub.subscribed:
                break
            await asyncio.sleep(0.02)
        async with (
            hub.subscribe(scope, tenant.site.id) as stuck,
            hub.subscribe(scope, tenant.site.id) as first,
            hub.subscribe(scope, tenant.site.id) as second,
        ):
            channel = tick_channel(tenant.tenant_id, tenant.site.id)
            payloads = [b'{"n":%d}' % i for i in range(CLIENT_QUEUE + 8)]
            frames: list[tuple[bytes | None, bytes | None]] = []
            for payload in payloads:
                await redis.publish(channel, payload)
                frames.append(await asyncio.wait_for(asyncio.gather(first.get(), second.get()), timeout=5))
            # The stuck client's queue filled and it was cut off: only the end of its stream is left.
            assert stuck.get_nowait() is None
            assert stuck.empty()
            await redis.publish(channel, b'{"n":"after"}')
            await asyncio.wait_for(asyncio.gather(first.get(), second.get()), timeout=5)
            assert stuck.empty()
    finally:
        await hub.stop()
        await redis.aclose()
    assert [a for a, _ in frames] == [b"event: tick\ndata: " + p + b"\n\n" for p in payloads]
    # Framed once per tick: every client is handed the same bytes object.
    assert all(a is b for a, b in frames)
