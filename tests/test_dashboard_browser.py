"""The dashboard in a real headless Chromium: log in, see the overview, watch it move live."""

from __future__ import annotations

import httpx
import pytest
from playwright.async_api import Browser, expect

from artifacts import artifact
from stack import Stack
from visitor import BROWSER

pytestmark = pytest.mark.browser


@pytest.mark.serial  # the live chart and the totals are held to seconds after each beacon
async def test_login_overview_and_live_chart_moving(stack: Stack, browser: Browser) -> None:
    tenant = await stack.tenant("Browser")
    site = tenant.site.id
    async with httpx.AsyncClient(base_url=stack.collector, headers=BROWSER) as collector:
        for i in range(12):
            await collector.post("/api/event", content=f'{{"s": "{site}", "u": "https://b.example/{i}"}}')
    # Counted before the page opens, so every tick the page sees later is from the live beacons.
    assert await stack.counts(tenant, {"pageviews": 12}) == {"pageviews": 12}

    page = await browser.new_page(viewport={"width": 1280, "height": 900})
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    await page.goto(f"{stack.dashboard}/sites/{site}")
    await expect(page).to_have_url(f"{stack.dashboard}/login")
    await page.fill("input[name=email]", tenant.email)
    await page.fill("input[name=password]", tenant.password)
    await page.click("button[type=submit]")
    await expect(page.locator(".site-name")).to_have_text(tenant.site.name)
    await page.screenshot(path=str(artifact("sites.png")), full_page=True)

    await page.click(".site-name")
    await expect(page.locator("#stat-pageviews")).to_have_text("12", timeout=15_000)
    await expect(page.locator("#live-status")).to_have_text("live")
    async with httpx.AsyncClient(base_url=stack.collector, headers=BROWSER) as collector:
        for i in range(3):
            await collector.post(
                "/api/event", content=f'{{"s": "{site}", "u": "https://b.example/live/{i}"}}'
            )
    await expect(page.locator("#live-chart")).to_have_attribute("data-live-events", "3", timeout=5_000)
    # The panel refreshes itself from ClickHouse after ticks, so the totals follow too.
    await expect(page.locator("#stat-pageviews")).to_have_text("15", timeout=10_000)
    # The refreshed overview draws its chart again: the swap replaced the element it was drawn in.
    await expect(page.locator("#overview-chart canvas")).to_have_count(1)
    await page.screenshot(path=str(artifact("overview-live-ticks.png")), full_page=True)
    # The page holds the live stream open; the browser may outlive the stack's graceful stop.
    await page.close()
    assert errors == []


async def test_login_with_wrong_password_shows_an_error(stack: Stack, browser: Browser) -> None:
    tenant = await stack.tenant("WrongPassword")
    page = await browser.new_page()
    await page.goto(f"{stack.dashboard}/login")
    await page.fill("input[name=email]", tenant.email)
    await page.fill("input[name=password]", "not the password")
    await page.click("button[type=submit]")
    await expect(page.locator(".error")).to_have_text("Wrong email or password.")
