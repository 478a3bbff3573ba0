"""The goals page: goals added from the form count conversions of events sent through the real
collector; bad goals are refused with the reason; viewers read but cannot change; other tenants'
sites stay unknown."""

from __future__ import annotations

import contextlib
import re
import secrets
from collections.abc import AsyncIterator

import httpx
import msgspec
import pytest
from playwright.async_api import Browser, expect

from artifacts import artifact
from dashboard_client import CSRF_FIELD, login
from pulse.oltp.goals import Goals
from stack import Stack, Tenant
from visitor import BROWSER

ROW = re.compile(
    r'class="goal-name">([^<]*)</td>.*?goal-conversions"[^>]*>([^<]*)</td>\s*<td class="num goal-rate"[^>]*>([^<]*)</td>',
    re.DOTALL,
)


@contextlib.asynccontextmanager
async def _signed_in(stack: Stack, email: str, password: str) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=stack.dashboard, timeout=30) as client:
        answer = await login(client, email, password)
        assert answer.status_code == 303, answer.text
        yield client


async def _csrf(client: httpx.AsyncClient, page: str) -> str:
    match = CSRF_FIELD.search((await client.get(page)).text)
    assert match, f"{page} carries a CSRF token"
    return match.group(1)


async def _add(client: httpx.AsyncClient, site_id: str, **form: str) -> httpx.Response:
    page = f"/sites/{site_id}/goals"
    return await client.post(page, data=form | {"_csrf_token": await _csrf(client, page)})


async def _viewer(stack: Stack, tenant: Tenant) -> tuple[str, str]:
    email, password = f"viewer-{secrets.token_hex(4)}@example.com", "viewer password 1"
    await stack.accounts.create_user(email, password, tenant.tenant_id, "viewer")
    return email, password


def _rows(html: str) -> dict[str, tuple[str, str]]:
    return {name: (conversions, rate) for name, conversions, rate in ROW.findall(html)}


async def test_goals_added_on_the_page_show_conversions_of_collected_events(stack: Stack) -> None:
    tenant = await stack.tenant("GoalsPage")
    site = tenant.site.id
    async with _signed_in(stack, tenant.email, tenant.password) as client:
        empty = await client.get(f"/sites/{site}/goals")
        assert empty.status_code == 200
        assert 'id="no-goals"' in empty.text
        for form in (
            {"name": "Read the blog", "kind": "page", "pattern": "/blog/*"},
            {"name": "Signup", "kind": "event", "pattern": "signup"},
        ):
            added = await _add(client, site, **form)
            assert (added.status_code, added.headers.get("location")) == (303, f"/sites/{site}/goals")

        # Four visitors (one per address): two read the blog, one of them signs up; /blogroll is
        # no blog post and / is nothing.
        visits = {
            "198.51.100.1": [("pageview", "/blog/first")],
            "198.51.100.2": [("pageview", "/blog/2024/second"), ("signup", "/blog/2024/second")],
            "198.51.100.3": [("pageview", "/")],
            "198.51.100.4": [("pageview", "/blogroll")],
        }
        async with httpx.AsyncClient(base_url=stack.collector, headers=BROWSER) as collector:
            for address, events in visits.items():
                for name, path in events:
                    beacon = {"s": site, "u": f"https://goals.example{path}", "n": name}
                    sent = await collector.post(
                        "/api/event",
                        content=msgspec.json.encode(beacon),
                        headers={"x-forwarded-for": address},
                    )
                    assert sent.status_code == 202, sent.text
        assert await stack.counts(tenant, {"pageviews": 4, "events": 5}, period="30d") == {
            "pageviews": 4,
            "events": 5,
        }

        async def rows() -> dict[str, tuple[str, str]]:
            return _rows((await client.get(f"/sites/{site}/goals")).text)

        expected = {"Read the blog": ("2", "50.0 %"), "Signup": ("1", "25.0 %")}
        assert await stack.wait_for(rows, expected, timeout_s=15) == expected


async def test_a_bad_goal_is_refused_with_the_reason_and_the_form_kept(stack: Stack) -> None:
    tenant = await stack.tenant("GoalsRefused")
    site = tenant.site.id
    async with _signed_in(stack, tenant.email, tenant.password) as client:
        cases = [
            ({"name": "Blog", "kind": "page", "pattern": "blog/*"}, "a path starting with /"),
            ({"name": "  ", "kind": "event", "pattern": "signup"}, "Name: must not be empty"),
            ({"name": "Odd", "kind": "download", "pattern": "x"}, "Kind: must be one of page, event"),
            ({"name": "Spaced", "kind": "page", "pattern": "/a b"}, "must not contain spaces"),
            ({"name": "N" * 121, "kind": "event", "pattern": "x"}, "at most 120 characters"),
        ]
        for form, reason in cases:
            refused = await _add(client, site, **form)
            assert refused.status_code == 400, form
            error = re.search(r'id="goal-error">([^<]*)<', refused.text)
            assert error, refused.text[:500]
            assert reason in error.group(1).replace("&#39;", "'"), form
        # The form comes back with what was typed.
        assert 'value="blog/*"' in (await _add(client, site, name="Blog", kind="page", pattern="blog/*")).text

        await _add(client, site, name="Signup", kind="event", pattern="signup")
        twice = await _add(client, site, name="Signup", kind="event", pattern="other")
        assert twice.status_code == 400
        assert "already has a goal named" in twice.text
        goals = await Goals(stack.engine).list(tenant.tenant_id, site)
        assert [g.name for g in goals] == ["Signup"]


async def test_goal_names_and_patterns_render_inert(stack: Stack) -> None:
    tenant = await stack.tenant("GoalsEscaped")
    site = tenant.site.id
    payload = "<script>alert(1)</script>"
    async with _signed_in(stack, tenant.email, tenant.password) as client:
        assert (await _add(client, site, name=payload, kind="event", pattern=payload)).status_code == 303
        page = (await client.get(f"/sites/{site}/goals")).text
    assert payload not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page


async def test_a_goal_is_deleted_from_its_button(stack: Stack) -> None:
    tenant = await stack.tenant("GoalsDeleted")
    site = tenant.site.id
    goal = await Goals(stack.engine).create(tenant.tenant_id, site, "Signup", "event", "signup")
    async with _signed_in(stack, tenant.email, tenant.password) as client:
        page = f"/sites/{site}/goals"
        without_token = await client.post(f"{page}/{goal.id}/delete")
        assert without_token.status_code == 403
        assert await Goals(stack.engine).get(tenant.tenant_id, goal.id) == goal
        deleted = await client.post(
            f"{page}/{goal.id}/delete", data={"_csrf_token": await _csrf(client, page)}
        )
        assert (deleted.status_code, deleted.headers.get("location")) == (303, page)
        assert 'id="no-goals"' in (await client.get(page)).text
        again = await client.post(f"{page}/{goal.id}/delete", data={"_csrf_token": await _csrf(client, page)})
        assert again.status_code == 404


async def test_a_viewer_sees_the_goals_but_gets_403_pages_for_changes(stack: Stack) -> None:
    tenant = await stack.tenant("GoalsViewer")
    site = tenant.site.id
    goal = await Goals(stack.engine).create(tenant.tenant_id, site, "Signup", "event", "signup")
    email, password = await _viewer(stack, tenant)
    async with _signed_in(stack, email, password) as client:
        page = f"/sites/{site}/goals"
        shown = await client.get(page)
        assert shown.status_code == 200
        assert "Signup" in shown.text
        assert 'id="read-only"' in shown.text
        assert f'action="{page}"' not in shown.text
        assert "/delete" not in shown.text
        token = await _csrf(client, "/sites")
        added = await client.post(
            page, data={"name": "Mine", "kind": "page", "pattern": "/x", "_csrf_token": token}
        )
        deleted = await client.post(f"{page}/{goal.id}/delete", data={"_csrf_token": token})
    for refused in (added, deleted):
        assert refused.status_code == 403
        assert refused.headers["content-type"].startswith("text/html")
        assert "You can look, but not change this" in refused.text
    assert await Goals(stack.engine).list(tenant.tenant_id, site) == [goal]


async def test_another_tenants_goals_page_is_not_found(stack: Stack) -> None:
    mine, theirs = await stack.tenant("GoalsMine"), await stack.tenant("GoalsTheirs")
    their_goal = await Goals(stack.engine).create(
        theirs.tenant_id, theirs.site.id, "Their secret goal", "event", "x"
    )
    async with _signed_in(stack, mine.email, mine.password) as client:
        token = await _csrf(client, f"/sites/{mine.site.id}/goals")
        answers = [
            await client.get(f"/sites/{theirs.site.id}/goals"),
            await client.post(
                f"/sites/{theirs.site.id}/goals",
                data={"name": "Planted", "kind": "event", "pattern": "x", "_csrf_token": token},
            ),
            await client.post(
                f"/sites/{theirs.site.id}/goals/{their_goal.id}/delete", data={"_csrf_token": token}
            ),
            # Their goal under my own site: goals are looked up within the site.
            await client.post(
                f"/sites/{mine.site.id}/goals/{their_goal.id}/delete", data={"_csrf_token": token}
            ),
        ]
    for answer in answers:
        assert answer.status_code == 404, answer.text[:300]
        assert "Their secret goal" not in answer.text
    assert await Goals(stack.engine).list(theirs.tenant_id, theirs.site.id) == [their_goal]


@pytest.mark.browser
async def test_goals_and_share_pages_in_chromium_by_keyboard_and_at_phone_width(
    stack: Stack, browser: Browser
) -> None:
    tenant = await stack.tenant("GoalsBrowser")
    site = tenant.site.id
    await Goals(stack.engine).create(tenant.tenant_id, site, "Read the blog", "page", "/blog/*")
    async with httpx.AsyncClient(base_url=stack.collector, headers=BROWSER) as collector:
        for address, path in (("198.51.100.31", "/blog/a"), ("198.51.100.32", "/")):
            beacon = {"s": site, "u": f"https://goals.example{path}"}
            headers = {"x-forwarded-for": address}
            assert (
                await collector.post("/api/event", content=msgspec.json.encode(beacon), headers=headers)
            ).is_success
    assert await stack.counts(tenant, {"pageviews": 2}) == {"pageviews": 2}

    for width, name in ((1280, "goals.png"), (375, "goals-phone.png")):
        page = await browser.new_page(viewport={"width": width, "height": 900})
        errors: list[str] = []
        page.on("pageerror", lambda exc, errors=errors: errors.append(str(exc)))
        await page.goto(f"{stack.dashboard}/login")
        await page.fill("input[name=email]", tenant.email)
        await page.fill("input[name=password]", tenant.password)
        await page.click("button[type=submit]")
        await page.goto(f"{stack.dashboard}/sites/{site}/goals")
        await expect(page.locator(".goal-row", has_text="Read the blog").locator(".goal-rate")).to_have_text(
            "50.0 %"
        )
        if width == 1280:
            # Adding a goal with the keyboard alone.
            await page.locator("input[name=name]").focus()
            await page.keyboard.type("Signup")
            await page.keyboard.press("Tab")
            await page.keyboard.press("ArrowDown")
            await page.keyboard.press("Tab")
            await page.keyboard.type("signup")
            await page.keyboard.press("Enter")
            await expect(page.locator(".goal-row", has_text="Signup").locator(".goal-kind")).to_have_text(
                "event"
            )
        assert await page.evaluate("document.documentElement.scrollWidth") <= width
        await page.screenshot(path=str(artifact(name)), full_page=True)

        await page.goto(f"{stack.dashboard}/sites/{site}/share")
        if width == 1280:
            await page.fill("input[name=password]", "open sesame 42")
            await page.click("form.share-form button[type=submit]")
            await expect(page.locator("#share-url")).to_have_value(
                re.compile(rf"^{re.escape(stack.dashboard)}/share/")
            )
        await expect(page.locator(".share-protected")).to_have_text(["yes"])
        assert await page.evaluate("document.documentElement.scrollWidth") <= width
        await page.screenshot(path=str(artifact(name.replace("goals", "share-links"))), full_page=True)
        await page.close()
        assert errors == []
