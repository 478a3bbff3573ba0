"""The invitation flow in a real Chromium: invite, join through the link, change a role, remove."""

from __future__ import annotations

import secrets

import pytest
from playwright.async_api import Browser, Dialog, expect

from artifacts import artifact
from stack import Stack

pytestmark = pytest.mark.browser


async def test_an_invited_admin_joins_through_the_link_and_the_owner_manages_them(
    stack: Stack, browser: Browser
) -> None:
    tenant = await stack.tenant(f"TeamBrowser{secrets.token_hex(3)}")
    admin_email = f"admin-{secrets.token_hex(4)}@example.com"
    owner = await browser.new_context(viewport={"width": 1280, "height": 900})
    page = await owner.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    await page.goto(f"{stack.dashboard}/login")
    await page.fill("input[name=email]", tenant.email)
    await page.fill("input[name=password]", tenant.password)
    await page.click("button[type=submit]")
    await page.click("nav >> text=Team")
    await expect(page).to_have_url(f"{stack.dashboard}/team")

    await page.fill("input[name=email]", admin_email)
    await page.select_option(".invite-form select[name=role]", "admin")
    await page.click("text=Create invitation link")
    await expect(page.locator("#team-notice")).to_contain_text(
        f"Invitation for {admin_email} as admin created."
    )
    link = await page.locator("#invite-link").input_value()
    await page.screenshot(path=str(artifact("team-link.png")))
    assert link.startswith(f"{stack.dashboard}/invite/")
    await page.fill("input[name=email]", f"viewer-{secrets.token_hex(4)}@example.com")
    await page.click("text=Create invitation link")
    await expect(page.locator(".invitation")).to_have_count(2)

    invitee = await browser.new_context(viewport={"width": 375, "height": 800})
    joining = await invitee.new_page()
    joining.on("pageerror", lambda exc: errors.append(str(exc)))
    await joining.goto(link)
    await expect(joining.locator("h1")).to_contain_text("Join TeamBrowser")
    await joining.fill("input[name=password]", "a long enough password")
    await joining.fill("input[name=confirm]", "a long enough password")
    await joining.screenshot(path=str(artifact("team-invite.png")), full_page=True)
    await joining.click("button[type=submit]")
    await expect(joining).to_have_url(f"{stack.dashboard}/sites")
    await joining.goto(f"{stack.dashboard}/team")
    me = joining.locator(".member", has_text=admin_email)
    await expect(me.locator(".badge", has_text="you")).to_be_visible()
    await expect(me.locator(".member-role")).to_have_text("admin")
    await joining.screenshot(path=str(artifact("team-phone.png")), full_page=True)

    await page.goto(f"{stack.dashboard}/team")
    joined = page.locator(".member", has_text=admin_email)
    await expect(joined.locator(".member-role")).to_have_text("admin")
    await expect(page.locator(".invitation")).to_have_count(1)
    await page.screenshot(path=str(artifact("team.png")), full_page=True)

    await joined.locator("select[name=role]").select_option("viewer")
    await joined.locator("text=Change role").click()
    await expect(page.locator("#team-notice")).to_have_text("Role changed.")
    await expect(page.locator(".member", has_text=admin_email).locator(".member-role")).to_have_text("viewer")

    async def accept(dialog: Dialog) -> None:
        await dialog.accept()

    page.on("dialog", accept)
    await page.locator(".member", has_text=admin_email).locator("button.danger").click()
    await expect(page.locator("#team-notice")).to_contain_text("Member removed")
    await expect(page.locator(".member", has_text=admin_email)).to_have_count(0)
    # The removed member's next request sends them to the login page.
    await joining.goto(f"{stack.dashboard}/team")
    await expect(joining).to_have_url(f"{stack.dashboard}/login")
    await owner.close()
    await invitee.close()
    assert errors == []
