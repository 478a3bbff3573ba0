"""A site's visitor mode: the collector honours a browser's own visitor id only on a cookie site.

Through the real collector and rollup: two beacons from one browser (one IP, one User-Agent)
with different first-party ids are one visitor on a cookieless site and two on a cookie site.
"""

from __future__ import annotations

import httpx
import msgspec
import pytest

from pulse.oltp.accounts import VisitorMode
from pulse.oltp.api_keys import ApiKeys
from pulse.tracker_asset import TrackerAsset, snippets
from stack import Stack
from visitor import BROWSER


async def _send_two_ids(stack: Stack, site_id: str) -> None:
    async with httpx.AsyncClient(base_url=stack.collector, headers=BROWSER) as collector:
        for client_id in ("0.1111", "0.2222"):
            sent = await collector.post(
                "/api/event", json={"s": site_id, "u": "https://mode.example/", "i": client_id}
            )
            assert sent.status_code == 202, sent.text


async def test_a_browsers_visitor_id_counts_only_on_a_cookie_site(stack: Stack) -> None:
    tenant = await stack.tenant("VisitorMode")
    assert tenant.site.visitor_mode == "cookieless"
    cookie_site = await stack.accounts.create_site(
        tenant.tenant_id, "Cookie site", "cookie.example", visitor_mode="cookie"
    )
    await _send_two_ids(stack, tenant.site.id)
    await _send_two_ids(stack, cookie_site.id)

    cookieless = await stack.counts(tenant, {"pageviews": 2, "visitors": 1})
    with_ids = await stack.counts(
        msgspec.structs.replace(tenant, site=cookie_site), {"pageviews": 2, "visitors": 2}
    )
    assert (cookieless, with_ids) == ({"pageviews": 2, "visitors": 1}, {"pageviews": 2, "visitors": 2})


async def test_server_side_events_keep_the_visitor_they_name_on_a_cookieless_site(stack: Stack) -> None:
    """A backend's `visitor` is its own account of who the visitor is, often all it has (no IP)."""
    tenant = await stack.tenant("ServerVisitors")
    _, secret = await ApiKeys(stack.engine).create(tenant.tenant_id, "backend", ["events:write"], "test")
    async with httpx.AsyncClient(base_url=stack.dashboard, timeout=30) as dashboard:
        token = (await dashboard.post("/api/v1/token", json={"api_key": secret})).json()["token"]
    events = [
        {
            "site": tenant.site.id,
            "url": "https://s.example/",
            "visitor": name,
            "user_agent": BROWSER["user-agent"],
        }
        for name in ("customer-1", "customer-2")
    ]
    async with httpx.AsyncClient(base_url=stack.collector) as collector:
        sent = await collector.post(
            "/api/v1/events", json=events, headers={"authorization": f"Bearer {token}"}
        )
    assert sent.status_code == 202, sent.text
    assert await stack.counts(tenant, {"visitors": 2}) == {"visitors": 2}


async def test_the_management_api_reads_and_changes_the_visitor_mode(stack: Stack) -> None:
    tenant = await stack.tenant("ModeApi")
    token = await stack.token(tenant)
    async with httpx.AsyncClient(
        base_url=stack.dashboard, headers={"authorization": f"Bearer {token}"}, timeout=30
    ) as api:
        assert (await api.get(f"/api/v1/sites/{tenant.site.id}")).json()["visitor_mode"] == "cookieless"
        created = await api.post(
            "/api/v1/sites", json={"name": "Ids", "domain": "ids.example", "visitor_mode": "cookie"}
        )
        assert created.status_code == 201, created.text
        assert created.json()["visitor_mode"] == "cookie"
        site = created.json()["id"]
        changed = await api.patch(f"/api/v1/sites/{site}", json={"visitor_mode": "cookieless"})
        assert changed.json()["visitor_mode"] == "cookieless"
        refused = await api.patch(f"/api/v1/sites/{site}", json={"visitor_mode": "fingerprint"})
        assert refused.status_code == 400
        assert refused.json()["details"][0]["key"] == "visitor_mode"
    stored = await stack.accounts.get_site(tenant.tenant_id, site)
    assert stored is not None
    assert stored.visitor_mode == "cookieless"


@pytest.mark.parametrize(("mode", "attribute"), [("cookieless", ""), ("cookie", ' data-visitor="cookie"')])
def test_snippets_ask_for_a_first_party_id_only_in_cookie_mode(mode: VisitorMode, attribute: str) -> None:
    tracker = TrackerAsset(
        body=b"", gzipped=b"", etag='"e"', versioned_name="p.0123456789abcdef.js", integrity="sha384-X"
    )
    made = snippets(tracker, "https://c.example", "abcdefghjkmn", mode)
    assert (
        made.latest
        == f'<script defer data-site="abcdefghjkmn"{attribute} src="https://c.example/p.js"></script>'
    )
    assert made.pinned.startswith(
        f'<script defer data-site="abcdefghjkmn"{attribute} src="https://c.example/p.0123456789abcdef.js"'
    )
