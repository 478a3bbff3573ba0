"""Public share links: the store, their management page, the password gate, and a share view that
shows its one site's figures and reveals nothing else of the tenant or of any other tenant."""

from __future__ import annotations

import asyncio
import contextlib
import csv
import hashlib
import io
import re
import secrets
from collections.abc import AsyncIterator

import httpx
import msgspec
import pytest
from playwright.async_api import Browser, expect
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from artifacts import artifact
from dashboard_client import CSRF_FIELD, login
from pulse.dashboard.app import create_dashboard_app
from pulse.embedded.services import free_port
from pulse.oltp.accounts import Accounts, Site
from pulse.oltp.goals import Goals, UnknownSite
from pulse.oltp.share_links import MAX_LINKS_PER_SITE, InvalidShareLink, ShareLinks
from pulse.resources import Resources
from stack import Stack, Tenant, serving
from visitor import BROWSER

PASSWORD = "open sesame 42"


# The store, on SQLite and PostgreSQL.


async def _site(accounts: Accounts, name: str) -> Site:
    tenant = await accounts.create_tenant(name)
    return await accounts.create_site(tenant.id, f"{name} site", f"{name.lower()}.example")


async def test_a_link_keeps_only_hashes_and_opens_by_its_token(
    accounts: Accounts, oltp_engine: AsyncEngine
) -> None:
    links = ShareLinks(oltp_engine)
    site = await _site(accounts, "Stored")
    open_link, open_token = await links.create(site.tenant_id, site.id, " Investors ")
    locked, locked_token = await links.create(site.tenant_id, site.id, "Board", PASSWORD)
    assert (open_link.label, open_link.protected, locked.protected) == ("Investors", False, True)
    assert len(open_token) >= 43
    assert open_token != locked_token

    async with oltp_engine.connect() as conn:
        rows = (await conn.execute(text("SELECT id, token_hash, password_hash FROM share_links"))).all()
    stored = {row.id: row for row in rows}
    assert stored[open_link.id].token_hash == hashlib.sha256(open_token.encode()).hexdigest()
    assert stored[open_link.id].password_hash is None
    assert stored[locked.id].password_hash.startswith("$argon2id$")
    assert all(open_token not in str(tuple(row)) and PASSWORD not in str(tuple(row)) for row in rows)

    opened = await links.open(open_token)
    assert opened is not None
    assert (opened.link, opened.lock) == (open_link, "")
    opened_locked = await links.open(locked_token)
    assert opened_locked is not None
    assert opened_locked.link == locked
    assert opened_locked.lock != ""
    assert await links.unlock(locked, PASSWORD) is True
    assert await links.unlock(locked, PASSWORD + "!") is False
    assert await links.unlock(open_link, "") is True
    assert [link.id for link in await links.list(site.tenant_id, site.id)] == [locked.id, open_link.id]


async def test_revoked_unknown_and_malformed_tokens_open_nothing(
    accounts: Accounts, oltp_engine: AsyncEngine
) -> None:
    links = ShareLinks(oltp_engine)
    site = await _site(accounts, "Revoked")
    link, token = await links.create(site.tenant_id, site.id, "Gone soon", PASSWORD)
    assert await links.revoke(site.tenant_id, site.id, link.id) is True
    assert await links.open(token) is None
    assert await links.unlock(link, PASSWORD) is False
    (listed,) = await links.list(site.tenant_id, site.id)
    assert listed.revoked_at is not None
    # Revoking again keeps the first time.
    assert await links.revoke(site.tenant_id, site.id, link.id) is True
    assert (await links.list(site.tenant_id, site.id))[0].revoked_at == listed.revoked_at
    for token_like in ("", "x" * 43, token[:-1], token + "A", "\x00" * 43, "../" * 15):
        assert await links.open(token_like) is None


async def test_another_tenant_cannot_create_list_or_revoke(
    accounts: Accounts, oltp_engine: AsyncEngine
) -> None:
    links = ShareLinks(oltp_engine)
    mine, theirs = await _site(accounts, "MineShare"), await _site(accounts, "TheirsShare")
    their_link, their_token = await links.create(theirs.tenant_id, theirs.id, "Theirs")
    with pytest.raises(UnknownSite):
        await links.create(mine.tenant_id, theirs.id, "Planted")
    assert await links.list(mine.tenant_id, theirs.id) == []
    assert await links.revoke(mine.tenant_id, theirs.id, their_link.id) is False
    # Their link named under my own site is no link of mine either.
    assert await links.revoke(mine.tenant_id, mine.id, their_link.id) is False
    assert await links.open(their_token) is not None


async def test_labels_passwords_and_the_number_of_links_are_checked(
    accounts: Accounts, oltp_engine: AsyncEngine
) -> None:
    links = ShareLinks(oltp_engine)
    site = await _site(accounts, "Checked")
    refusals = [
        (("  ", ""), "label", "must not be empty"),
        (("x" * 101, ""), "label", "at most 100"),
        (("bell\x07", ""), "label", "control characters"),
        (("Short", "seven77"), "password", "at least 8"),
        (("Long", "p" * 1025), "password", "at most 1024"),
    ]
    for (label, password), field, reason in refusals:
        with pytest.raises(InvalidShareLink) as refused:
            await links.create(site.tenant_id, site.id, label, password)
        assert refused.value.field == field
        assert reason in refused.value.reason
    for i in range(MAX_LINKS_PER_SITE):
        await links.create(site.tenant_id, site.id, f"Link {i}")
    with pytest.raises(InvalidShareLink, match="at most 50 live share links"):
        await links.create(site.tenant_id, site.id, "One too many")
    first = (await links.list(site.tenant_id, site.id))[-1]
    await links.revoke(site.tenant_id, site.id, first.id)
    await links.create(site.tenant_id, site.id, "In its place")


# The dashboard's pages, on the real stack.


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


async def _viewer(stack: Stack, tenant: Tenant) -> tuple[str, str]:
    email, password = f"viewer-{secrets.token_hex(4)}@example.com", "viewer password 1"
    await stack.accounts.create_user(email, password, tenant.tenant_id, "viewer")
    return email, password


async def _send(stack: Stack, site_id: str, paths: list[str]) -> None:
    async with httpx.AsyncClient(base_url=stack.collector, headers=BROWSER) as collector:
        for i, path in enumerate(paths):
            beacon = {"s": site_id, "u": f"https://shared.example{path}"}
            sent = await collector.post(
                "/api/event",
                content=msgspec.json.encode(beacon),
                headers={"x-forwarded-for": f"198.51.100.{i + 1}"},
            )
            assert sent.status_code == 202, sent.text


async def test_an_owner_creates_sees_once_and_revokes_a_link_on_the_page(stack: Stack) -> None:
    tenant = await stack.tenant("ShareManaged")
    page = f"/sites/{tenant.site.id}/share"
    async with _signed_in(stack, tenant.email, tenant.password) as client:
        assert 'id="no-links"' in (await client.get(page)).text
        token = await _csrf(client, page)
        short = await client.post(page, data={"label": "Board", "password": "short", "_csrf_token": token})
        assert short.status_code == 400
        assert "Password: must be at least 8 characters" in short.text
        created = await client.post(page, data={"label": "Board", "password": PASSWORD, "_csrf_token": token})
        assert created.status_code == 201
        url = re.search(r'id="share-url" value="([^"]+)"', created.text)
        assert url, created.text[:1000]
        share_url = url.group(1)
        assert share_url.startswith(f"{stack.dashboard}/share/")
        listed = await client.get(page)
        assert share_url not in listed.text, "a link's URL is shown once, at its creation"
        row = re.search(
            r'data-link-id="([0-9a-f]{32})">\s*<td class="goal-name share-label">Board</td>\s*'
            r'<td class="share-protected"[^>]*>yes</td>',
            listed.text,
        )
        assert row, listed.text
        opened = await client.get(share_url)
        assert opened.status_code == 200
        assert "Password required" in opened.text

        revoked = await client.post(
            f"{page}/{row.group(1)}/revoke", data={"_csrf_token": await _csrf(client, page)}
        )
        assert (revoked.status_code, revoked.headers["location"]) == (303, page)
        assert '<span class="muted">revoked</span>' in (await client.get(page)).text
        assert (await client.get(share_url)).status_code == 404


async def test_a_viewer_can_neither_see_nor_create_nor_revoke_links(stack: Stack) -> None:
    tenant = await stack.tenant("ShareViewer")
    links = ShareLinks(stack.engine)
    link, token = await links.create(tenant.tenant_id, tenant.site.id, "Existing")
    email, password = await _viewer(stack, tenant)
    page = f"/sites/{tenant.site.id}/share"
    async with _signed_in(stack, email, password) as client:
        csrf = await _csrf(client, "/sites")
        answers = [
            await client.get(page),
            await client.post(page, data={"label": "Viewer's", "_csrf_token": csrf}),
            await client.post(f"{page}/{link.id}/revoke", data={"_csrf_token": csrf}),
        ]
        goals_page = await client.get(f"/sites/{tenant.site.id}/goals")
    for answer in answers:
        assert answer.status_code == 403
        assert "You can look, but not change this" in answer.text
        assert "Existing" not in answer.text
    assert f'href="{page}"' not in goals_page.text, "a viewer is not offered the share tab"
    assert [(li.id, li.revoked_at) for li in await links.list(tenant.tenant_id, tenant.site.id)] == [
        (link.id, None)
    ]
    assert await links.open(token) is not None


async def test_another_tenants_share_pages_are_not_found(stack: Stack) -> None:
    mine, theirs = await stack.tenant("ShareMine"), await stack.tenant("ShareTheirs")
    links = ShareLinks(stack.engine)
    their_link, their_token = await links.create(theirs.tenant_id, theirs.site.id, "Their secret label")
    async with _signed_in(stack, mine.email, mine.password) as client:
        csrf = await _csrf(client, f"/sites/{mine.site.id}/share")
        answers = [
            await client.get(f"/sites/{theirs.site.id}/share"),
            await client.post(
                f"/sites/{theirs.site.id}/share", data={"label": "Planted", "_csrf_token": csrf}
            ),
            await client.post(
                f"/sites/{theirs.site.id}/share/{their_link.id}/revoke", data={"_csrf_token": csrf}
            ),
            await client.post(
                f"/sites/{mine.site.id}/share/{their_link.id}/revoke", data={"_csrf_token": csrf}
            ),
        ]
    for answer in answers:
        assert answer.status_code == 404
        assert "Their secret label" not in answer.text
    assert [li.label for li in await links.list(theirs.tenant_id, theirs.site.id)] == ["Their secret label"]
    assert await links.open(their_token) is not None


async def _unlock(client: httpx.AsyncClient, token: str, password: str, **headers: str) -> httpx.Response:
    csrf = await _csrf(client, f"/share/{token}")
    return await client.post(
        f"/share/{token}/unlock", data={"password": password, "_csrf_token": csrf}, headers=headers
    )


async def test_a_protected_link_asks_for_its_password_once(stack: Stack) -> None:
    tenant = await stack.tenant("SharePassword")
    links = ShareLinks(stack.engine)
    _, token = await links.create(tenant.tenant_id, tenant.site.id, "Board", PASSWORD)
    _, other_token = await links.create(tenant.tenant_id, tenant.site.id, "Same password", PASSWORD)
    async with httpx.AsyncClient(base_url=stack.dashboard, timeout=30) as client:
        locked = await client.get(f"/share/{token}")
        assert locked.status_code == 200
        assert "Password required" in locked.text
        # Nothing of the site before the password: not even its name.
        assert tenant.site.name not in locked.text
        assert tenant.site.id not in locked.text
        for sub in ("/panels/pages", "/export/pages.csv", "/live"):
            refused = await client.get(f"/share/{token}{sub}")
            assert (refused.status_code, refused.headers.get("location")) == (303, f"/share/{token}"), sub

        without_csrf = await client.post(f"/share/{token}/unlock", data={"password": PASSWORD})
        assert without_csrf.status_code == 403
        wrong = await _unlock(client, token, "not the password")
        assert wrong.status_code == 401
        assert "Wrong password." in wrong.text
        assert "pulse_share" not in wrong.headers.get("set-cookie", "")

        right = await _unlock(client, token, PASSWORD)
        assert (right.status_code, right.headers["location"]) == (303, f"/share/{token}")
        cookie = next(c for c in right.headers.get_list("set-cookie") if c.startswith("pulse_share="))
        attributes = {part.strip().lower() for part in cookie.split(";")}
        assert f"path=/share/{token}".lower() in attributes
        assert {"httponly", "samesite=lax"} <= attributes
        proof = cookie.split(";")[0].removeprefix("pulse_share=")

        opened = await client.get(f"/share/{token}")
        assert opened.status_code == 200
        assert opened.headers["cache-control"] == "no-store, private"
        assert "Password required" not in opened.text
        assert tenant.site.name in opened.text
        assert (await client.get(f"/share/{token}/panels/pages")).status_code == 200

    # The proof opens its own link only, and cannot be forged.
    async with httpx.AsyncClient(base_url=stack.dashboard, timeout=30) as stranger:
        other = await stranger.get(f"/share/{other_token}", headers={"cookie": f"pulse_share={proof}"})
        assert "Password required" in other.text
        expires, _, mac = proof.partition(".")
        forged = f"{int(expires) + 3600}.{mac}"
        for bad in (forged, f"{expires}.{'0' * 64}", "garbage", ""):
            answer = await stranger.get(f"/share/{token}", headers={"cookie": f"pulse_share={bad}"})
            assert "Password required" in answer.text, bad
        # The view asked for before the password is the one shown after it.
        locked_view = await stranger.get(f"/share/{token}?period=7d&compare=off")
        assert f'action="/share/{token}/unlock?period=7d&amp;compare=off"' in locked_view.text
        csrf = await _csrf(stranger, "/login")
        again = await stranger.post(
            f"/share/{token}/unlock?period=7d&compare=off", data={"password": PASSWORD, "_csrf_token": csrf}
        )
        assert again.headers["location"] == f"/share/{token}?period=7d&compare=off"

        # A session of the tenant's owner is no way past the password either.
        async with _signed_in(stack, tenant.email, tenant.password) as owner:
            assert "Password required" in (await owner.get(f"/share/{token}")).text


async def test_password_guesses_are_throttled_like_logins(stack: Stack) -> None:
    tenant = await stack.tenant("ShareThrottle")
    _, token = await ShareLinks(stack.engine).create(tenant.tenant_id, tenant.site.id, "Board", PASSWORD)
    settings = msgspec.structs.replace(stack.settings, metrics_enabled=False, login_rate_limit_per_min=3)
    resources = Resources(settings)
    # 127.0.0.1 is a trusted proxy in the test settings, so the forwarded address is the client's.
    guesser, other = {"x-forwarded-for": "203.0.113.70"}, {"x-forwarded-for": "198.51.100.90"}
    try:
        async with (
            serving(create_dashboard_app(resources), free_port()) as url,
            httpx.AsyncClient(base_url=url, timeout=30) as client,
        ):
            guesses = [await _unlock(client, token, f"guess {i}", **guesser) for i in range(3)]
            late = await _unlock(client, token, PASSWORD, **guesser)
            elsewhere = await _unlock(client, token, PASSWORD, **other)
    finally:
        await resources.close()
    assert [g.status_code for g in guesses] == [401, 401, 401]
    assert late.status_code == 429
    assert "Too many attempts" in late.text
    assert int(late.headers["retry-after"]) >= 1
    assert "pulse_share" not in late.headers.get("set-cookie", "")
    assert elsewhere.status_code == 303


async def test_a_revoked_or_unknown_link_is_404_everywhere(stack: Stack) -> None:
    tenant = await stack.tenant("ShareRevoked")
    links = ShareLinks(stack.engine)
    link, token = await links.create(tenant.tenant_id, tenant.site.id, "Open")
    async with httpx.AsyncClient(base_url=stack.dashboard, timeout=30) as client:
        assert (await client.get(f"/share/{token}")).status_code == 200
        csrf = await _csrf(client, "/login")
        await links.revoke(tenant.tenant_id, tenant.site.id, link.id)
        unknown = secrets.token_urlsafe(32)
        for t in (token, unknown, "short"):
            for sub in ("", "/panels/pages", "/export/pages.csv", "/live"):
                answer = await client.get(f"/share/{t}{sub}")
                assert answer.status_code == 404, (t, sub)
                assert tenant.site.name not in answer.text
            unlock = await client.post(f"/share/{t}/unlock", data={"password": "x", "_csrf_token": csrf})
            assert unlock.status_code == 404


async def test_a_disabled_sites_links_open_nothing_until_it_is_enabled_again(stack: Stack) -> None:
    tenant = await stack.tenant("ShareDisabled")
    _, token = await ShareLinks(stack.engine).create(tenant.tenant_id, tenant.site.id, "Public")
    async with httpx.AsyncClient(base_url=stack.dashboard, timeout=30) as client:
        assert (await client.get(f"/share/{token}")).status_code == 200
        await stack.accounts.set_disabled(tenant.tenant_id, tenant.site.id, True)
        for sub in ("", "/panels/pages", "/export/pages.csv", "/live"):
            answer = await client.get(f"/share/{token}{sub}")
            assert answer.status_code == 404, sub
            assert tenant.site.name not in answer.text
        await stack.accounts.set_disabled(tenant.tenant_id, tenant.site.id, False)
        assert (await client.get(f"/share/{token}")).status_code == 200


async def test_the_share_view_reveals_nothing_but_its_sites_figures(stack: Stack) -> None:
    tenant = await stack.tenant("ShareReveal")
    shared = tenant.site
    other = await stack.accounts.create_site(tenant.tenant_id, "Hidden sibling site", "hidden.example")
    stranger = await stack.tenant("ShareStranger")
    await _send(stack, shared.id, ["/shared-page"])
    await _send(stack, other.id, ["/sibling-secret-page"])
    await _send(stack, stranger.site.id, ["/stranger-secret-page"])
    for owner, site in ((tenant, shared), (tenant, other), (stranger, stranger.site)):
        assert await stack.counts(msgspec.structs.replace(owner, site=site), {"pageviews": 1}) == {
            "pageviews": 1
        }
    _, token = await ShareLinks(stack.engine).create(tenant.tenant_id, shared.id, "Everyone")

    secrets_of_others = (
        other.id,
        other.name,
        "/sibling-secret-page",
        stranger.site.id,
        stranger.site.name,
        "/stranger-secret-page",
        tenant.tenant_id,
        tenant.email,
    )
    base = f"/share/{token}"
    async with httpx.AsyncClient(base_url=stack.dashboard, timeout=30) as client:

        async def shows_own_page() -> bool:
            return "/shared-page" in (await client.get(f"{base}/panels/pages")).text

        assert await stack.wait_for(shows_own_page, True, timeout_s=15)
        page = await client.get(base)
        assert page.status_code == 200
        assert shared.name in page.text
        hrefs = re.findall(r'(?:href|action|hx-get|hx-post|data-stream|src)="([^"]*)"', page.text)
        assert hrefs
        leading = [h for h in hrefs if not h.startswith((base, "/static/", "#", "?"))]
        assert leading == [], "every link of a share page stays under its own URL"
        assert re.search(r"(?<!/static)/(sites|team|logout|login)\b(?!\.css)", page.text) is None
        assert "settings" not in page.text.lower()

        # Other sites' ids, in every place a request can carry one: all answered for the link's site.
        answers = {
            "query": await client.get(base, params={"site_id": other.id, "site": stranger.site.id}),
            "panel": await client.get(f"{base}/panels/pages", params={"site_id": other.id}),
            "csv": await client.get(f"{base}/export/pages.csv", params={"site_id": stranger.site.id}),
            "filter": await client.get(f"{base}/panels/pages", params={"f": "page,contains,secret"}),
        }
        for name, answer in answers.items():
            assert answer.status_code == 200, name
        rows = list(csv.reader(io.StringIO(answers["csv"].text)))
        assert [row[0] for row in rows[1:]] == ["/shared-page"]
        # Paths that name another site 404: the share routes have no place for a site id.
        not_found = [
            f"{base}/sites/{other.id}",
            f"{base}/{other.id}",
            f"{base}/panels/pages/{other.id}",
            f"{base}/sites/{stranger.site.id}/export/pages.csv",
            f"{base}/goals",
            f"{base}/settings",
            f"/share/{other.id}",
        ]
        for path in not_found:
            assert (await client.get(path)).status_code == 404, path
        everything = page.text + "".join(a.text for a in answers.values())
        leaked = [marker for marker in secrets_of_others if marker in everything]
        assert leaked == []


async def _sse_ticks(lines: AsyncIterator[str], until_site: str) -> list[dict[str, object]]:
    """Tick payloads up to and including the first one for `until_site`."""
    ticks: list[dict[str, object]] = []
    event = ""
    async for line in lines:
        if line.startswith("event: "):
            event = line.removeprefix("event: ")
        elif line.startswith("data: ") and event == "tick":
            tick = msgspec.json.decode(line.removeprefix("data: "))
            ticks.append(tick)
            if tick["site_id"] == until_site:
                return ticks
    return ticks


async def test_the_share_live_stream_carries_its_own_sites_ticks_only(stack: Stack) -> None:
    tenant = await stack.tenant("ShareLive")
    other = await stack.accounts.create_site(tenant.tenant_id, "Live sibling", "sibling.example")
    _, token = await ShareLinks(stack.engine).create(tenant.tenant_id, tenant.site.id, "Live")
    async with (
        httpx.AsyncClient(base_url=stack.dashboard, timeout=30) as client,
        client.stream("GET", f"/share/{token}/live") as response,
    ):
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        lines = response.aiter_lines()
        assert await anext(lines) == "event: ready"
        # The sibling's events are counted (and ticked) before the shared site's are sent.
        await _send(stack, other.id, ["/sibling"])
        sibling = msgspec.structs.replace(tenant, site=other)
        assert await stack.counts(sibling, {"pageviews": 1}) == {"pageviews": 1}
        await _send(stack, tenant.site.id, ["/shared"])
        async with asyncio.timeout(20):
            ticks = await _sse_ticks(lines, tenant.site.id)
    assert ticks
    assert {tick["site_id"] for tick in ticks} == {tenant.site.id}


@pytest.mark.browser
async def test_a_protected_share_link_in_chromium_shows_one_read_only_dashboard(
    stack: Stack, browser: Browser
) -> None:
    tenant = await stack.tenant("ShareBrowser")
    site = tenant.site.id
    sibling = await stack.accounts.create_site(tenant.tenant_id, "Hidden sibling site", "sibling.example")
    await Goals(stack.engine).create(tenant.tenant_id, site, "Signup", "event", "signup")
    beacons = [
        ("198.51.100.21", "pageview", "/", "https://www.google.com/search?q=pulse"),
        ("198.51.100.21", "pageview", "/pricing", ""),
        ("198.51.100.21", "signup", "/pricing", ""),
        ("198.51.100.22", "pageview", "/pricing", "https://news.ycombinator.com/item?id=1"),
        ("198.51.100.23", "pageview", "/blog/launch", ""),
    ]
    async with httpx.AsyncClient(base_url=stack.collector, headers=BROWSER) as collector:
        for address, name, path, referrer in beacons:
            beacon = {"s": site, "u": f"https://shop.example{path}", "n": name, "r": referrer}
            sent = await collector.post(
                "/api/event", content=msgspec.json.encode(beacon), headers={"x-forwarded-for": address}
            )
            assert sent.status_code == 202, sent.text
    assert await stack.counts(tenant, {"pageviews": 4, "visitors": 3}) == {"pageviews": 4, "visitors": 3}
    _, token = await ShareLinks(stack.engine).create(tenant.tenant_id, site, "Investors", PASSWORD)
    base = f"/share/{token}"

    page = await browser.new_page(viewport={"width": 1280, "height": 900})
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    await page.goto(f"{stack.dashboard}{base}?period=today")
    await page.fill("input[name=password]", "not it")
    await page.click("button[type=submit]")
    await expect(page.locator("#unlock-error")).to_have_text("Wrong password.")
    await page.fill("input[name=password]", PASSWORD)
    await page.click("button[type=submit]")
    await expect(page.locator("h1")).to_have_text(tenant.site.name)
    assert page.url == f"{stack.dashboard}{base}?period=today"
    await expect(page.locator("#stat-pageviews")).to_have_text("4")
    await expect(page.locator("#stat-visitors")).to_have_text("3")
    await expect(page.locator("#live-status")).to_have_text("live", timeout=10_000)

    hrefs: list[str] = await page.eval_on_selector_all(
        "a[href], form[action], [hx-get], [data-stream]",
        "els => els.map(e => e.getAttribute('href') || e.getAttribute('action') || "
        "e.getAttribute('hx-get') || e.getAttribute('data-stream'))",
    )
    assert hrefs
    assert [h for h in hrefs if not h.startswith(base)] == []
    text = await page.content()
    for hidden in (sibling.id, sibling.name, tenant.tenant_id, tenant.email, "/team", "Log out"):
        assert hidden not in text, hidden

    # Live ticks of the shared site reach the share view, and its figures follow.
    await expect(page.locator("#overview-chart canvas")).not_to_have_count(0)
    await page.screenshot(path=str(artifact("share.png")), full_page=True)
    async with httpx.AsyncClient(base_url=stack.collector, headers=BROWSER) as collector:
        beacon = {"s": site, "u": "https://shop.example/live"}
        assert (await collector.post("/api/event", content=msgspec.json.encode(beacon))).status_code == 202
    await expect(page.locator("#live-chart")).to_have_attribute("data-live-events", "1", timeout=10_000)
    await expect(page.locator("#stat-pageviews")).to_have_text("5", timeout=10_000)
    await page.screenshot(path=str(artifact("share-live.png")), full_page=True)

    # A row filters the shared view, and the filter stays in the share URL.
    await page.locator("label[for=ov-tab-pages]").click()
    await page.locator("#panel-pages .ov-row", has_text="/pricing").locator("a").first.click()
    await expect(page.locator("#stat-visitors")).to_have_text("2")
    assert page.url.startswith(f"{stack.dashboard}{base}?")
    await page.screenshot(path=str(artifact("share-filtered.png")), full_page=True)

    phone = await browser.new_page(viewport={"width": 375, "height": 800})
    cookies = await page.context.cookies()
    await phone.context.add_cookies(cookies)
    await phone.goto(f"{stack.dashboard}{base}?period=today")
    await expect(phone.locator("#stat-pageviews")).to_have_text("5")
    width = await phone.evaluate("document.documentElement.scrollWidth")
    assert width <= 375, "the share view fits a phone's width"
    await phone.screenshot(path=str(artifact("share-phone.png")), full_page=True)
    await phone.close()
    await page.close()
    assert errors == []
