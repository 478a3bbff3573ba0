"""The sites pages in a real headless Chromium: add a site, install it, watch the first event arrive."""

from __future__ import annotations

import httpx
import pytest
from playwright.async_api import Browser, ConsoleMessage, Page, Response, expect

from artifacts import artifact
from stack import Stack, Tenant
from visitor import BROWSER

pytestmark = pytest.mark.browser

PHONE = {"width": 375, "height": 800}


async def _log_in(page: Page, stack: Stack, tenant: Tenant) -> None:
    await page.goto(f"{stack.dashboard}/login")
    await page.fill("input[name=email]", tenant.email)
    await page.fill("input[name=password]", tenant.password)
    await page.click("button[type=submit]")
    await expect(page).to_have_url(f"{stack.dashboard}/sites")


def _watch_errors(page: Page) -> list[str]:
    """Script errors, policy violations (a blocked inline script or style is a console error) and
    failed loads of what a page asks for; the pages' own statuses are the test's to check."""
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))

    def console(message: ConsoleMessage) -> None:
        if message.type == "error" and not message.text.startswith("Failed to load resource"):
            errors.append(message.text)

    def response(answer: Response) -> None:
        if answer.status >= 400 and answer.request.resource_type != "document":
            errors.append(f"{answer.status} {answer.url}")

    page.on("console", console)
    page.on("response", response)
    return errors


async def test_a_site_added_in_the_browser_turns_green_on_its_first_event(
    stack: Stack, browser: Browser
) -> None:
    tenant = await stack.tenant("SiteBrowser")
    # The new-site form starts in the browser's own time zone.
    context = await browser.new_context(viewport={"width": 1280, "height": 900}, timezone_id="Europe/Berlin")
    page = await context.new_page()
    errors = _watch_errors(page)
    await _log_in(page, stack, tenant)

    await page.click("#add-site")
    await expect(page).to_have_url(f"{stack.dashboard}/sites/new")
    await expect(page.locator("#site-timezone")).to_have_value("Europe/Berlin")
    await page.fill("#site-name", "Bakery")
    await page.fill("#site-domain", "bakery.example")
    await page.fill("#site-hosts", "bakery.example\nwww bakery example")
    await page.click("form.site-form button[type=submit]")
    await expect(page.locator("#allowed_hosts-error")).to_contain_text(
        "'www bakery example' is not a hostname"
    )
    await expect(page.locator("#site-name")).to_have_value("Bakery")
    await page.screenshot(path=str(artifact("site-new-error.png")), full_page=True)
    await page.fill("#site-hosts", "bakery.example\nwww.bakery.example")
    await page.select_option("#site-timezone", "Europe/Paris")
    await page.check("input[name=visitor_mode][value=cookie]")
    await page.screenshot(path=str(artifact("site-new.png")), full_page=True)
    await page.set_viewport_size(PHONE)
    await page.screenshot(path=str(artifact("site-new-375.png")), full_page=True)
    await page.set_viewport_size({"width": 1280, "height": 900})

    await page.click("form.site-form button[type=submit]")
    await page.wait_for_url(f"{stack.dashboard}/sites/*/install", wait_until="domcontentloaded")
    site_id = page.url.rsplit("/", 2)[-2]
    check = page.locator("#first-event")
    await expect(check).to_have_text("Waiting for the first event…")
    await expect(page.locator("#snippet-latest")).to_contain_text(
        f'data-site="{site_id}" data-visitor="cookie"'
    )
    await expect(page.locator("#sri-hash")).to_contain_text("sha384-")
    await expect(page.locator("button.copy").first).to_be_visible()
    await page.screenshot(path=str(artifact("install-waiting.png")), full_page=True)

    async with httpx.AsyncClient(base_url=stack.collector, headers=BROWSER) as collector:
        sent = await collector.post(
            "/api/event", json={"s": site_id, "u": "https://www.bakery.example/", "i": "0.42"}
        )
    assert sent.status_code == 202, sent.text
    await expect(check).to_have_class("first-event received", timeout=10_000)
    await expect(check).to_have_text("Received: events from this site are arriving.")
    await page.screenshot(path=str(artifact("install.png")), full_page=True)
    await page.set_viewport_size(PHONE)
    await page.screenshot(path=str(artifact("install-375.png")), full_page=True)

    await page.click(".site-tabs >> text=Settings")
    await expect(page.locator("#site-timezone")).to_have_value("Europe/Paris")
    await expect(page.locator("input[name=visitor_mode][value=cookie]")).to_be_checked()
    await page.screenshot(path=str(artifact("site-settings-375.png")), full_page=True)
    await page.set_viewport_size({"width": 1280, "height": 900})
    await page.screenshot(path=str(artifact("site-settings.png")), full_page=True)
    await page.click("#disable-site")
    await expect(page.locator("#enable-site")).to_be_visible()
    await page.click(".topnav >> text=Sites")
    await expect(page.locator(".site-row.is-disabled .site-name")).to_have_text("Bakery")
    await page.screenshot(path=str(artifact("site-list.png")), full_page=True)
    # The page holds the live stream open; the browser may outlive the stack's graceful stop.
    await context.close()
    assert errors == []


async def test_without_javascript_the_install_page_says_to_reload(stack: Stack, browser: Browser) -> None:
    tenant = await stack.tenant("SiteNoScript")
    context = await browser.new_context(java_script_enabled=False)
    page = await context.new_page()
    await _log_in(page, stack, tenant)
    await page.goto(f"{stack.dashboard}/sites/{tenant.site.id}/install")
    await expect(page.locator("#first-event")).to_have_text("Waiting for the first event…")
    await expect(page.get_by_text("reload the page after visiting your site")).to_be_visible()
    # Copy buttons need a script: without one they stay hidden, and the snippets are plain text.
    await expect(page.locator("button.copy").first).to_be_hidden()
    await context.close()
