"""Each dependency down in turn: what keeps working, what says it is degraded, what is lost (nothing).

- Redis down: the dashboard serves its figures, the live ones read from ClickHouse, and says so.
- ClickHouse down: the collector keeps accepting into Kafka, the worker pauses, the dashboard
  shows an error panel (the API a 503 with Retry-After); once it is back every event counts.
- ClickHouse unreachable when the dashboard starts: it starts, logs in, streams live views,
  and answers pages 503.
- Broker down: tests/test_collector_broker_down.py (503 + Retry-After, then at once: the breaker).
"""

from __future__ import annotations

import asyncio
import contextlib
import time

import httpx
import msgspec
import pytest
from playwright.async_api import Browser, Page, expect
from redis.asyncio import Redis

from artifacts import artifact
from dashboard_client import login
from fake_clock import FakeClock
from pulse.breaker import CircuitBreaker, DependencyDown
from pulse.dashboard.app import create_dashboard_app
from pulse.embedded.services import free_port
from pulse.live.keys import tick_channel
from pulse.oltp.share_links import ShareLinks
from pulse.resources import Resources
from pulse.warehouse.client import Warehouse
from stack import Stack, serving
from visitor import BROWSER


async def _fails() -> None:
    raise ConnectionError("down")


async def _works() -> str:
    return "ok"


async def test_breaker_opens_after_failures_in_a_row_then_lets_one_probe_through() -> None:
    clock = FakeClock()
    breaker = CircuitBreaker("dep", failures=3, open_s=5, clock=clock)
    for _ in range(3):
        with contextlib.suppress(ConnectionError):
            await breaker.call(_fails, (ConnectionError,))
    assert breaker.is_open
    calls = 0

    async def counted() -> str:
        nonlocal calls
        calls += 1
        return "ok"

    with pytest.raises(DependencyDown) as refused:
        await breaker.call(counted, (ConnectionError,))
    assert refused.value.retry_after_s == 5
    assert calls == 0
    clock.now = 5
    assert await breaker.call(counted, (ConnectionError,)) == "ok"
    assert calls == 1
    assert not breaker.is_open


async def test_a_failed_probe_opens_the_breaker_again_and_a_cancelled_one_frees_it() -> None:
    clock = FakeClock()
    breaker = CircuitBreaker("dep", failures=1, open_s=5, clock=clock)
    with contextlib.suppress(ConnectionError):
        await breaker.call(_fails, (ConnectionError,))
    clock.now = 5
    with contextlib.suppress(ConnectionError):
        await breaker.call(_fails, (ConnectionError,))
    clock.now = 9
    # A failed probe opens the breaker for another open_s.
    with pytest.raises(DependencyDown):
        await breaker.call(_works, (ConnectionError,))
    clock.now = 10

    async def cancelled() -> None:
        raise asyncio.CancelledError

    with contextlib.suppress(asyncio.CancelledError):
        await breaker.call(cancelled, (ConnectionError,))
    # The cancelled probe decided nothing: the next call probes again.
    assert await breaker.call(_works, (ConnectionError,)) == "ok"


async def _send(stack: Stack, site: str, count: int, path: str = "p") -> None:
    async with httpx.AsyncClient(base_url=stack.collector, headers=BROWSER) as client:
        for i in range(count):
            body = f'{{"s": "{site}", "u": "https://degraded.example/{path}{i}"}}'
            assert (await client.post("/api/event", content=body)).status_code == 202


async def _browser_login(browser: Browser, dashboard: str, email: str, password: str) -> Page:
    page = await browser.new_page(viewport={"width": 1280, "height": 900})
    await page.goto(f"{dashboard}/login")
    await page.fill("input[name=email]", email)
    await page.fill("input[name=password]", password)
    await page.click("button[type=submit]")
    await expect(page.locator(".site-name")).to_be_visible()
    return page


async def test_redis_down_the_dashboard_serves_live_figures_from_clickhouse_and_says_so(
    stack: Stack, browser: Browser
) -> None:
    tenant = await stack.tenant("NoRedis")
    await _send(stack, tenant.site.id, 3)
    await stack.counts(tenant, {"pageviews": 3})
    # A Redis that refuses connections: nothing listens on this port.
    settings = msgspec.structs.replace(stack.settings, redis_url=f"redis://127.0.0.1:{free_port()}/0")
    resources = Resources(settings)
    try:
        async with (
            serving(create_dashboard_app(resources), free_port()) as url,
            httpx.AsyncClient(base_url=url, follow_redirects=True, timeout=30) as client,
        ):
            await login(client, tenant.email, tenant.password)
            pages = [await client.get(f"/sites/{tenant.site.id}") for _ in range(4)]
            token = (
                await client.post("/api/v1/token", json={"email": tenant.email, "password": tenant.password})
            ).json()["token"]
            realtime = await client.get(
                f"/api/v1/sites/{tenant.site.id}/realtime", headers={"authorization": f"Bearer {token}"}
            )
            page = await _browser_login(browser, url, tenant.email, tenant.password)
            await page.goto(f"{url}/sites/{tenant.site.id}")
            await expect(page.locator("#live-degraded")).to_be_visible()
            await expect(page.locator("#live-status")).to_have_text("degraded")
            await expect(page.locator("#stat-pageviews")).to_have_text("3")
            await page.screenshot(path=str(artifact("overview-redis-down.png")), full_page=True)
            await page.close()
    finally:
        await resources.close()
    assert [p.status_code for p in pages] == [200] * 4
    assert all("Live layer unavailable" in p.text for p in pages)
    assert 'id="stat-pageviews">3<' in pages[-1].text
    # One visitor (the test's one browser) is active; the figure comes from raw events.
    assert 'id="stat-current">1<' in pages[-1].text
    assert realtime.json() == {"site_id": tenant.site.id, "visitors": 1, "source": "clickhouse"}


async def test_redis_up_the_live_figures_come_from_redis(stack: Stack) -> None:
    tenant = await stack.tenant("WithRedis")
    await _send(stack, tenant.site.id, 1)
    await stack.counts(tenant, {"pageviews": 1})
    token = await stack.token(tenant)
    async with httpx.AsyncClient(base_url=stack.dashboard, timeout=30) as client:
        realtime = await client.get(
            f"/api/v1/sites/{tenant.site.id}/realtime", headers={"authorization": f"Bearer {token}"}
        )
    assert realtime.json()["source"] == "redis"


# Every table the figures are read from: with any left, a page's reads would partly succeed and
# the breaker, which opens on consecutive failures, would never open.
ROLLUPS = (
    "stats_minute",
    "stats_hour",
    "stats_day",
    "totals_hour",
    "totals_day",
    "traffic_hour",
    "traffic_day",
    "visits_hour",
    "visits_day",
    "day_versions",
    "visit_days",
    "sessions",
    "events",
)


@pytest.mark.serial  # the open breaker's answer is timed within a second
async def test_clickhouse_down_collector_accepts_dashboard_shows_an_error_and_nothing_is_lost(
    stack: Stack, browser: Browser
) -> None:
    tenant = await stack.tenant("NoClickHouse")
    await _send(stack, tenant.site.id, 2, "before")
    await stack.counts(tenant, {"pageviews": 2})
    warehouse = Warehouse(stack.settings.effective_clickhouse_url, stack.settings.clickhouse_database)
    token = await stack.token(tenant)
    bearer = {"authorization": f"Bearer {token}"}
    browsing = await _browser_login(browser, stack.dashboard, tenant.email, tenant.password)
    # The real engine unable to read or write the tables the dashboard and the worker use.
    for table in ROLLUPS:
        await warehouse.run(warehouse.client.command, f"DETACH TABLE {table}")
    try:
        await _send(stack, tenant.site.id, 5, "during")
        async with httpx.AsyncClient(base_url=stack.dashboard, follow_redirects=True, timeout=30) as client:
            await login(client, tenant.email, tenant.password)
            page = await client.get(f"/sites/{tenant.site.id}")
            panel = await client.get(f"/sites/{tenant.site.id}", headers={"hx-request": "true"})
            api = await client.get(f"/api/v1/sites/{tenant.site.id}/aggregate", headers=bearer)
            # The breaker is open by now: answers come at once, without asking ClickHouse.
            started = time.perf_counter()
            again = await client.get(f"/api/v1/sites/{tenant.site.id}/aggregate", headers=bearer)
            fast_s = time.perf_counter() - started
        await browsing.goto(f"{stack.dashboard}/sites/{tenant.site.id}")
        await expect(browsing.locator("#warehouse-unavailable")).to_be_visible()
        await browsing.screenshot(path=str(artifact("overview-clickhouse-down.png")), full_page=True)
        await browsing.close()
    finally:
        for table in ROLLUPS:
            await warehouse.run(warehouse.client.command, f"ATTACH TABLE {table}")
    assert page.status_code == 503
    assert "Figures unavailable right now" in page.text
    assert "nothing is lost" in page.text
    assert int(page.headers["retry-after"]) >= 1
    assert panel.status_code == 200
    assert 'id="warehouse-unavailable"' in panel.text
    assert "<html" not in panel.text
    assert api.status_code == 503
    assert "analytics store unavailable" in api.json()["error"]
    assert again.status_code == 503
    assert "failed repeatedly" in again.json()["error"]
    assert fast_s < 1.0
    # Back: the 5 events accepted while it was down are counted, once.
    assert await stack.counts(tenant, {"pageviews": 7}, timeout_s=60) == {"pageviews": 7}


async def test_dashboard_started_without_clickhouse_streams_live_views_and_answers_pages_503(
    stack: Stack,
) -> None:
    tenant = await stack.tenant("LateClickHouse")
    _, share_token = await ShareLinks(stack.engine).create(tenant.tenant_id, tenant.site.id, "Public")
    # Nothing listens on this port: ClickHouse is not there when the dashboard starts.
    settings = msgspec.structs.replace(stack.settings, clickhouse_url=f"http://127.0.0.1:{free_port()}")
    resources = Resources(settings)
    redis = Redis.from_url(stack.settings.redis_url)
    try:
        async with (
            serving(create_dashboard_app(resources), free_port()) as url,
            httpx.AsyncClient(base_url=url, follow_redirects=True, timeout=30) as client,
        ):
            await login(client, tenant.email, tenant.password)
            async with client.stream("GET", f"/sites/{tenant.site.id}/live") as stream:
                lines = stream.aiter_lines()
                assert await anext(lines) == "event: ready"
                await redis.publish(tick_channel(tenant.tenant_id, tenant.site.id), b'{"n":1}')
                received = [await anext(lines) for _ in range(4)]
            # A process that only streamed never opened a connection to ClickHouse.
            streamed_only = resources.warehouse.client.connected
            page = await client.get(f"/sites/{tenant.site.id}")
            shared = await client.get(f"/share/{share_token}/")
            shared_part = await client.get(f"/share/{share_token}/", headers={"hx-request": "true"})
    finally:
        await redis.aclose()
        await resources.close()
    assert received == ["data: {}", "", "event: tick", 'data: {"n":1}']
    assert not streamed_only
    assert page.status_code == 503
    assert "Figures unavailable right now" in page.text
    # A share link's viewers get the same notice, and its htmx refresh a part it can swap in.
    assert shared.status_code == 503
    assert "Figures unavailable right now" in shared.text
    assert shared_part.status_code == 200
    assert "Figures unavailable right now" in shared_part.text
