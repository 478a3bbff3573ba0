"""Every dashboard page under a strict CSP, with script payloads in everything a visitor controls.

The pages are found from the app's own routes, so a page added later is swept too: every GET
page whose only path parameter is the site id is opened in Chromium for a site whose paths,
referrers, event names and properties are script payloads. None may run, none may break the
page, and the CSP must never have to refuse anything the page itself wanted.
"""

from __future__ import annotations

import json
import re

import httpx
import msgspec
import pytest
from litestar import Litestar
from playwright.async_api import Browser, Page

from dashboard_client import login
from pulse.dashboard.app import create_dashboard_app
from pulse.dashboard.security_headers import CONTENT_SECURITY_POLICY
from pulse.resources import Resources
from stack import Stack, Tenant
from visitor import BROWSER

pytestmark = pytest.mark.browser

PAYLOADS = (
    "<script>alert(1)</script>",
    '"><img src=x onerror=alert(2)>',
    "javascript:alert(3)",
    "';alert(4);//",
)
# Routes that are not pages (streams, exports, partials) or need more than a site id.
NOT_PAGES = re.compile(r"/(live|stream|export|panels)\b|\.csv$")


async def _page_paths(stack: Stack) -> list[str]:
    settings = msgspec.structs.replace(stack.settings, metrics_enabled=False)
    resources = Resources(settings)
    try:
        app = create_dashboard_app(resources)
        assert isinstance(app, Litestar)
        paths = sorted(
            route.path
            for route in app.routes
            if "GET" in getattr(route, "methods", ())
            and route.path.startswith("/sites/{site_id:str}")
            and route.path.count("{") == 1
            and not NOT_PAGES.search(route.path)
        )
    finally:
        await resources.close()
    return ["/sites", *paths]


async def _send_payloads(stack: Stack, tenant: Tenant) -> int:
    site = tenant.site.id
    sent = 0
    async with httpx.AsyncClient(base_url=stack.collector, headers=BROWSER) as collector:
        for i, payload in enumerate(PAYLOADS):
            beacons = [
                {
                    "s": site,
                    "u": f"https://shop.example/{payload}",
                    "r": f"https://{i}.ref.example/{payload}",
                },
                {"s": site, "u": f"https://shop.example/p?utm_source={payload}&utm_campaign={payload}"},
                {"s": site, "n": payload[:60], "u": "https://shop.example/", "p": {payload[:60]: payload}},
            ]
            for beacon in beacons:
                response = await collector.post("/api/event", content=json.dumps(beacon))
                assert response.status_code == 202, response.text
                sent += 1
    return sent


async def test_pages_carry_the_security_headers(stack: Stack) -> None:
    tenant = await stack.tenant("Headers")
    async with httpx.AsyncClient(base_url=stack.dashboard, timeout=30) as client:
        for path in ("/login", "/static/app.js"):
            response = await client.get(path)
            assert response.headers["content-security-policy"] == CONTENT_SECURITY_POLICY, path
            assert response.headers["x-content-type-options"] == "nosniff"
            assert response.headers["x-frame-options"] == "DENY"
        await login(client, tenant.email, tenant.password)
        page = await client.get(f"/sites/{tenant.site.id}")
        assert page.status_code == 200
        assert "script-src 'self'" in page.headers["content-security-policy"]
        assert "unsafe-inline" not in page.headers["content-security-policy"]


async def test_script_payloads_render_inert_on_every_page(stack: Stack, browser: Browser) -> None:
    tenant = await stack.tenant("Payloads")
    sent = await _send_payloads(stack, tenant)
    await stack.counts(tenant, {"events": sent})

    context = await browser.new_context(viewport={"width": 1280, "height": 900})
    page = await context.new_page()
    fired: list[str] = []
    refused: list[str] = []
    page.on("dialog", lambda dialog: (fired.append(dialog.message), dialog.dismiss()))
    page.on("pageerror", lambda exc: refused.append(f"page error: {exc}"))
    page.on(
        "console",
        lambda msg: refused.append(msg.text) if "Content Security Policy" in msg.text else None,
    )
    await _log_in(page, stack, tenant)
    swept = []
    for path in await _page_paths(stack):
        url = stack.dashboard + path.replace("{site_id:str}", tenant.site.id)
        response = await page.goto(url)
        assert response is not None, path
        assert response.status == 200, f"{path}: {response.status}"
        # Live pages hold a stream open, so the network never idles: give their scripts a moment.
        await page.wait_for_timeout(700)
        swept.append(path)
    await context.close()
    assert fired == [], f"a payload ran: {fired}"
    assert refused == [], f"the CSP refused what a page wanted, or a page broke: {refused}"
    assert "/sites/{site_id:str}" in swept


async def _log_in(page: Page, stack: Stack, tenant: Tenant) -> None:
    await page.goto(f"{stack.dashboard}/login")
    await page.fill("input[name=email]", tenant.email)
    await page.fill("input[name=password]", tenant.password)
    await page.click("button[type=submit]")
    await page.wait_for_url(f"{stack.dashboard}/sites")
