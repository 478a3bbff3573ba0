"""The sites pages over the real stack: add a site through the form, edit it, disable it, install it.

Every form is posted as a browser does, with the CSRF token it carries; refusals come back as the
form with the reason (400), viewers and other tenants are refused, and the install page's
first-event check reads the site's real figures.
"""

from __future__ import annotations

import html
import re
from collections.abc import AsyncIterator

import httpx
import msgspec
import pytest

from dashboard_client import CSRF_FIELD, login
from pulse.dashboard.site_pages import SiteForm
from pulse.oltp.accounts import Site
from stack import Stack, Tenant
from visitor import BROWSER


@pytest.fixture
async def owner(stack: Stack) -> AsyncIterator[tuple[Tenant, httpx.AsyncClient]]:
    tenant = await stack.tenant("SitePages")
    async with httpx.AsyncClient(base_url=stack.dashboard, timeout=30) as client:
        await login(client, tenant.email, tenant.password)
        yield tenant, client


async def _token(client: httpx.AsyncClient, page: str) -> str:
    form = await client.get(page)
    assert form.status_code == 200, form.text[:300]
    match = CSRF_FIELD.search(form.text)
    assert match, f"{page} carries a CSRF token"
    return match[1]


async def _post(client: httpx.AsyncClient, form_page: str, action: str, **fields: str) -> httpx.Response:
    """Posts `fields` to `action` with the CSRF token of the form on `form_page`."""
    return await client.post(action, data={**fields, "_csrf_token": await _token(client, form_page)})


NEW_SITE = {
    "name": "Shop",
    "domain": "Shop.Example",
    "allowed_hosts": "shop.example\r\n*.shop.example\r\n",
    "timezone": "Europe/Paris",
    "visitor_mode": "cookieless",
}


async def _create(client: httpx.AsyncClient, **fields: str) -> str:
    created = await _post(client, "/sites/new", "/sites/new", **(NEW_SITE | fields))
    assert created.status_code == 303, created.text[:500]
    location = created.headers["location"]
    match = re.fullmatch(r"/sites/([a-z0-9]+)/install", location)
    assert match, location
    return match[1]


async def _site(stack: Stack, tenant: Tenant, site_id: str) -> Site:
    site = await stack.accounts.get_site(tenant.tenant_id, site_id)
    assert site is not None
    return site


def _field_error(page: str, field: str) -> str:
    match = re.search(rf'<p class="field-error" id="{field}-error">(.*?)</p>', page, re.DOTALL)
    assert match, f"no message next to {field}"
    return html.unescape(match[1])


async def test_new_site_form_is_not_taken_for_a_site_called_new(
    owner: tuple[Tenant, httpx.AsyncClient],
) -> None:
    _, client = owner
    page = await client.get("/sites/new")
    assert page.status_code == 200
    assert '<form method="post" action="/sites/new"' in page.text
    assert "Europe/Paris" in page.text  # the time zones are offered


async def test_a_site_added_through_the_form_lands_on_its_install_page(
    stack: Stack, owner: tuple[Tenant, httpx.AsyncClient]
) -> None:
    tenant, client = owner
    site_id = await _create(client)
    site = await _site(stack, tenant, site_id)
    assert (site.name, site.domain, site.allowed_hosts, site.timezone, site.visitor_mode, site.disabled) == (
        "Shop",
        "shop.example",
        ("shop.example", "*.shop.example"),
        "Europe/Paris",
        "cookieless",
        False,
    )

    install = await client.get(f"/sites/{site_id}/install")
    assert install.status_code == 200
    text = html.unescape(install.text)
    assert f'<script defer data-site="{site_id}" src="{stack.collector}/p.js"></script>' in text
    assert re.search(
        rf'data-site="{site_id}" src="{stack.collector}/p\.[0-9a-f]{{16}}\.js" integrity="sha384-', text
    )
    assert "data-visitor" not in text
    assert "Waiting for the first event…" in text

    listed = (await client.get("/sites")).text
    for link in (
        f"/sites/{site_id}",
        f"/sites/{site_id}/settings",
        f"/sites/{site_id}/install",
        "/sites/new",
    ):
        assert f'href="{link}"' in listed


@pytest.mark.parametrize(
    ("fields", "field", "reason"),
    [
        ({"name": "   "}, "name", "site name must not be empty"),
        ({"domain": ""}, "domain", "domain must not be empty"),
        ({"name": "n" * 256}, "name", "at most 255 characters"),
        ({"allowed_hosts": "shop.example\nnot a host"}, "allowed_hosts", "'not a host' is not a hostname"),
        ({"allowed_hosts": "\n".join(f"h{i}.example" for i in range(51))}, "allowed_hosts", "at most 50"),
        ({"timezone": "Mars/Olympus"}, "timezone", "not an IANA time zone"),
        ({"visitor_mode": "fingerprint"}, "visitor_mode", "visitor mode must be one of cookieless, cookie"),
    ],
)
async def test_a_refused_new_site_comes_back_in_the_form_with_the_reason(
    stack: Stack, owner: tuple[Tenant, httpx.AsyncClient], fields: dict[str, str], field: str, reason: str
) -> None:
    tenant, client = owner
    response = await _post(client, "/sites/new", "/sites/new", **(NEW_SITE | fields))
    assert response.status_code == 400, response.text[:500]
    assert reason in _field_error(response.text, field)
    # What was typed is kept, so only the refused field needs fixing.
    assert 'value="Shop.Example"' in response.text or field == "domain"
    assert CSRF_FIELD.search(response.text), "the re-rendered form can be posted again"
    assert [s.id for s in await stack.accounts.list_sites(tenant.tenant_id)] == [tenant.site.id]


async def test_settings_save_every_field_and_the_snippet_follows_the_visitor_mode(
    stack: Stack, owner: tuple[Tenant, httpx.AsyncClient]
) -> None:
    tenant, client = owner
    site_id = tenant.site.id
    settings = f"/sites/{site_id}/settings"
    page = await client.get(settings)
    assert page.status_code == 200
    assert f'value="{tenant.site.name}"' in page.text
    assert "<option selected>UTC</option>" in page.text

    saved = await _post(
        client,
        settings,
        settings,
        name="Renamed",
        domain="renamed.example",
        allowed_hosts="renamed.example, www.renamed.example",
        timezone="America/New_York",
        visitor_mode="cookie",
    )
    assert saved.status_code == 303
    assert saved.headers["location"] == f"{settings}?saved=true"
    shown = await client.get(saved.headers["location"])
    assert "Saved." in shown.text
    assert "<option selected>America/New_York</option>" in shown.text
    assert "renamed.example\nwww.renamed.example</textarea>" in shown.text
    site = await _site(stack, tenant, site_id)
    assert (site.name, site.domain, site.allowed_hosts, site.timezone, site.visitor_mode) == (
        "Renamed",
        "renamed.example",
        ("renamed.example", "www.renamed.example"),
        "America/New_York",
        "cookie",
    )
    install = html.unescape((await client.get(f"/sites/{site_id}/install")).text)
    assert (
        f'<script defer data-site="{site_id}" data-visitor="cookie" src="{stack.collector}/p.js">' in install
    )


async def test_a_refused_change_saves_nothing_and_names_the_field(
    stack: Stack, owner: tuple[Tenant, httpx.AsyncClient]
) -> None:
    tenant, client = owner
    settings = f"/sites/{tenant.site.id}/settings"
    before = await _site(stack, tenant, tenant.site.id)
    response = await _post(
        client, settings, settings, **(NEW_SITE | {"name": "Changed", "timezone": "Nowhere/Special"})
    )
    assert response.status_code == 400
    assert "not an IANA time zone" in _field_error(response.text, "timezone")
    assert "Nothing was saved" in response.text
    assert 'value="Changed"' in response.text
    assert await _site(stack, tenant, tenant.site.id) == before


async def test_a_disabled_site_is_refused_by_the_collector_and_can_be_enabled(
    stack: Stack, owner: tuple[Tenant, httpx.AsyncClient]
) -> None:
    tenant, client = owner
    site_id = await _create(client, allowed_hosts="")
    settings = f"/sites/{site_id}/settings"
    assert 'action="/sites/' + site_id + '/disable"' in (await client.get(settings)).text

    disabled = await _post(client, settings, f"/sites/{site_id}/disable")
    assert disabled.status_code == 303
    assert disabled.headers["location"] == settings
    assert (await _site(stack, tenant, site_id)).disabled
    page = (await client.get(settings)).text
    assert "The collector refuses this site's events" in page
    assert f'action="/sites/{site_id}/enable"' in page
    assert "This site is disabled" in (await client.get(f"/sites/{site_id}/install")).text
    # The collector has never seen the site, so no cached answer stands between it and the store.
    async with httpx.AsyncClient(base_url=stack.collector, headers=BROWSER) as collector:
        refused = await collector.post("/api/event", json={"s": site_id, "u": "https://shop.example/"})
    assert refused.status_code == 403
    assert "disabled" in refused.text

    enabled = await _post(client, settings, f"/sites/{site_id}/enable")
    assert enabled.status_code == 303
    assert not (await _site(stack, tenant, site_id)).disabled


async def test_a_viewer_sees_no_edit_controls_and_every_change_is_refused(stack: Stack) -> None:
    tenant = await stack.tenant("SiteViewer")
    email = f"viewer-{tenant.email}"
    await stack.accounts.create_user(email, tenant.password, tenant.tenant_id, "viewer")
    site_id = tenant.site.id
    settings = f"/sites/{site_id}/settings"
    async with httpx.AsyncClient(base_url=stack.dashboard, timeout=30) as viewer:
        await login(viewer, email, tenant.password)
        listed = (await viewer.get("/sites")).text
        assert tenant.site.name in listed
        assert "/sites/new" not in listed
        page = await viewer.get(settings)
        assert page.status_code == 200
        assert "Save settings" not in page.text
        assert "/disable" not in page.text
        assert 'id="site-name" name="name"' in page.text
        assert re.search(r'<input id="site-name"[^>]* disabled>', page.text)
        assert (await viewer.get(f"/sites/{site_id}/install")).status_code == 200
        assert (await viewer.get("/sites/new")).status_code == 403

        # The settings page still carries a token (the logout form): the refusal is the role's.
        for action in ("/sites/new", settings, f"/sites/{site_id}/disable", f"/sites/{site_id}/enable"):
            refused = await _post(viewer, settings, action, **NEW_SITE)
            assert refused.status_code == 403, action
            assert "sites:write" in refused.text
            assert "text/html" in refused.headers["content-type"]
    assert await stack.accounts.list_sites(tenant.tenant_id) == [tenant.site]


async def test_another_tenants_site_pages_are_not_found(
    stack: Stack, owner: tuple[Tenant, httpx.AsyncClient]
) -> None:
    _, client = owner
    other = await stack.tenant("SitePagesOther")
    theirs = other.site.id
    own_form = "/sites/new"
    for path in (f"/sites/{theirs}/settings", f"/sites/{theirs}/install", f"/sites/{theirs}/install/status"):
        response = await client.get(path)
        assert response.status_code == 404, path
        assert other.site.name not in response.text
    for action in (f"/sites/{theirs}/settings", f"/sites/{theirs}/disable", f"/sites/{theirs}/enable"):
        response = await _post(client, own_form, action, **NEW_SITE)
        assert response.status_code == 404, action
        assert other.site.name not in response.text
    assert await _site(stack, other, theirs) == other.site


async def test_install_check_is_green_once_the_site_has_counted_an_event(
    stack: Stack, owner: tuple[Tenant, httpx.AsyncClient]
) -> None:
    tenant, client = owner
    site_id = tenant.site.id
    status = f"/sites/{site_id}/install/status"
    assert (await client.get(status)).json() == {"received": False}
    async with httpx.AsyncClient(base_url=stack.collector, headers=BROWSER) as collector:
        sent = await collector.post("/api/event", json={"s": site_id, "u": "https://x.example/"})
    assert sent.status_code == 202

    async def received() -> bool:
        return bool((await client.get(status)).json()["received"])

    assert await stack.wait_for(received, True)
    page = (await client.get(f"/sites/{site_id}/install")).text
    assert 'data-received="true"' in page
    assert "Received: events from this site are arriving." in page
    assert "Waiting for the first event" not in page


async def test_a_site_name_with_markup_is_shown_as_text(
    stack: Stack, owner: tuple[Tenant, httpx.AsyncClient]
) -> None:
    _, client = owner
    payload = '<script>alert("x")</script><img src=x onerror=alert(1)>'
    site_id = await _create(client, name=payload)
    for page in ("/sites", f"/sites/{site_id}/settings", f"/sites/{site_id}/install"):
        text = (await client.get(page)).text
        assert payload not in text, page
        assert "&lt;script&gt;alert(" in text, page


def test_the_form_takes_hosts_one_per_line_or_comma_separated() -> None:
    form = msgspec.convert(
        {"allowed_hosts": " a.example\r\n\r\nb.example, c.example,\nnot a host\n"}, SiteForm
    )
    # Spaces do not separate: "not a host" is a mistake to show, not three hosts to allow.
    assert form.hosts() == ["a.example", "b.example", "c.example", "not a host"]
