"""The management API over the real stack: sites and goals CRUD, permissions, validation, isolation."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from stack import Stack, Tenant


async def _client(stack: Stack, token: str) -> httpx.AsyncClient:
    # Logins hash passwords: on a busy machine one can take longer than httpx's default 5 s.
    return httpx.AsyncClient(
        base_url=stack.dashboard, headers={"authorization": f"Bearer {token}"}, timeout=30
    )


@pytest.fixture
async def owner(stack: Stack) -> AsyncIterator[tuple[Tenant, httpx.AsyncClient]]:
    """A tenant of the test's own, for tests that look at everything the tenant has."""
    tenant = await stack.tenant("Manager")
    async with await _client(stack, await stack.token(tenant)) as api:
        yield tenant, api


@pytest.fixture(scope="module")
async def refusing(stack: Stack) -> tuple[Tenant, str]:
    """One tenant shared by the tests of refused input: each checks that nothing changed."""
    tenant = await stack.tenant("Refusing")
    return tenant, await stack.token(tenant)


@pytest.fixture
async def refused(
    stack: Stack, refusing: tuple[Tenant, str]
) -> AsyncIterator[tuple[Tenant, httpx.AsyncClient]]:
    tenant, token = refusing
    async with await _client(stack, token) as api:
        yield tenant, api


async def _viewer_token(stack: Stack, tenant: Tenant) -> str:
    email = f"viewer-{tenant.email}"
    await stack.accounts.create_user(email, tenant.password, tenant.tenant_id, "viewer")
    return await stack.token(
        Tenant(tenant_id=tenant.tenant_id, email=email, password=tenant.password, site=tenant.site)
    )


def _field_named(body: dict[str, Any], field: str) -> bool:
    return any(field in f"{detail['key']} {detail['message']}" for detail in body["details"])


async def test_sites_crud_as_owner(owner: tuple[Tenant, httpx.AsyncClient]) -> None:
    tenant, api = owner
    listed = await api.get("/api/v1/sites")
    assert listed.status_code == 200
    assert [site["id"] for site in listed.json()["sites"]] == [tenant.site.id]
    assert listed.json()["sites"][0]["timezone"] == "UTC"

    created = await api.post(
        "/api/v1/sites",
        json={
            "name": "Blog",
            "domain": "Blog.Example",
            "allowed_hosts": ["blog.example", "*.blog.example"],
            "timezone": "Europe/Paris",
        },
    )
    assert created.status_code == 201, created.text
    site = created.json()
    assert (site["name"], site["domain"], site["timezone"], site["disabled"]) == (
        "Blog",
        "blog.example",
        "Europe/Paris",
        False,
    )
    assert site["allowed_hosts"] == ["blog.example", "*.blog.example"]
    assert (await api.get(f"/api/v1/sites/{site['id']}")).json() == site

    changed = await api.patch(
        f"/api/v1/sites/{site['id']}",
        json={"name": "The blog", "timezone": "America/New_York", "allowed_hosts": []},
    )
    assert changed.status_code == 200, changed.text
    assert (changed.json()["name"], changed.json()["timezone"], changed.json()["allowed_hosts"]) == (
        "The blog",
        "America/New_York",
        [],
    )
    # Fields not given stay as they were.
    assert changed.json()["domain"] == "blog.example"
    assert (await api.get(f"/api/v1/sites/{site['id']}")).json() == changed.json()

    deleted = await api.delete(f"/api/v1/sites/{site['id']}")
    assert deleted.status_code == 200
    assert deleted.json()["site"]["disabled"] is True
    assert "kept" in deleted.json()["detail"]
    # Disabled, not gone: it is still listed, and can be switched back on.
    assert site["id"] in [s["id"] for s in (await api.get("/api/v1/sites")).json()["sites"]]
    enabled = await api.patch(f"/api/v1/sites/{site['id']}", json={"disabled": False})
    assert enabled.json()["disabled"] is False


async def test_goals_crud_as_owner(owner: tuple[Tenant, httpx.AsyncClient]) -> None:
    tenant, api = owner
    goals = f"/api/v1/sites/{tenant.site.id}/goals"
    assert (await api.get(goals)).json() == {"goals": []}

    signup = await api.post(goals, json={"name": "Signup", "kind": "event", "pattern": "signup"})
    assert signup.status_code == 201, signup.text
    blog = (await api.post(goals, json={"name": "Blog", "kind": "page", "pattern": "/blog/*"})).json()
    assert [g["name"] for g in (await api.get(goals)).json()["goals"]] == ["Signup", "Blog"]
    assert (await api.get(f"{goals}/{blog['id']}")).json() == blog

    duplicate = await api.post(goals, json={"name": "Signup", "kind": "page", "pattern": "/signup"})
    assert duplicate.status_code == 400
    assert _field_named(duplicate.json(), "name")

    changed = await api.patch(f"{goals}/{blog['id']}", json={"kind": "event", "pattern": "read"})
    assert changed.status_code == 200, changed.text
    assert (changed.json()["kind"], changed.json()["pattern"], changed.json()["name"]) == (
        "event",
        "read",
        "Blog",
    )

    assert (await api.delete(f"{goals}/{blog['id']}")).status_code == 204
    assert (await api.get(f"{goals}/{blog['id']}")).status_code == 404
    assert (await api.delete(f"{goals}/{blog['id']}")).status_code == 404
    assert [g["id"] for g in (await api.get(goals)).json()["goals"]] == [signup.json()["id"]]


async def test_a_viewer_may_read_but_every_write_is_forbidden(stack: Stack) -> None:
    tenant = await stack.tenant("Watched")
    async with await _client(stack, await stack.token(tenant)) as owner_api:
        goal = (
            await owner_api.post(
                f"/api/v1/sites/{tenant.site.id}/goals",
                json={"name": "Signup", "kind": "event", "pattern": "s"},
            )
        ).json()
    site = f"/api/v1/sites/{tenant.site.id}"
    writes = [
        ("POST", "/api/v1/sites", {"name": "Mine", "domain": "mine.example"}),
        ("PATCH", site, {"name": "Renamed"}),
        ("DELETE", site, None),
        ("POST", f"{site}/goals", {"name": "Buy", "kind": "event", "pattern": "buy"}),
        ("PATCH", f"{site}/goals/{goal['id']}", {"name": "Renamed"}),
        ("DELETE", f"{site}/goals/{goal['id']}", None),
    ]
    async with await _client(stack, await _viewer_token(stack, tenant)) as viewer:
        for method, path, body in writes:
            response = await viewer.request(method, path, json=body)
            assert response.status_code == 403, (method, path, response.text)
            assert response.json()["missing_permission"] == "sites:write"
        for path in ("/api/v1/sites", site, f"{site}/goals", f"{site}/goals/{goal['id']}"):
            assert (await viewer.get(path)).status_code == 200, path
        # Nothing changed.
        assert (await viewer.get(site)).json()["name"] == tenant.site.name
        assert (await viewer.get(site)).json()["disabled"] is False
        assert [g["name"] for g in (await viewer.get(f"{site}/goals")).json()["goals"]] == ["Signup"]
        assert len((await viewer.get("/api/v1/sites")).json()["sites"]) == 1


async def test_another_tenants_sites_and_goals_are_not_found(stack: Stack) -> None:
    mine, theirs = await stack.tenant("Curious"), await stack.tenant("Private")
    their_site = f"/api/v1/sites/{theirs.site.id}"
    async with await _client(stack, await stack.token(theirs)) as their_api:
        goal = (
            await their_api.post(
                f"{their_site}/goals", json={"name": "Secret", "kind": "event", "pattern": "s"}
            )
        ).json()
        async with await _client(stack, await stack.token(mine)) as api:
            attempts = [
                ("GET", their_site, None),
                ("PATCH", their_site, {"name": "Taken"}),
                ("DELETE", their_site, None),
                ("GET", f"{their_site}/goals", None),
                ("POST", f"{their_site}/goals", {"name": "Mine", "kind": "event", "pattern": "x"}),
                ("GET", f"{their_site}/goals/{goal['id']}", None),
                ("PATCH", f"{their_site}/goals/{goal['id']}", {"name": "Taken"}),
                ("DELETE", f"{their_site}/goals/{goal['id']}", None),
                # Their goal under my own site is no goal of mine either.
                ("GET", f"/api/v1/sites/{mine.site.id}/goals/{goal['id']}", None),
                ("DELETE", f"/api/v1/sites/{mine.site.id}/goals/{goal['id']}", None),
            ]
            for method, path, body in attempts:
                response = await api.request(method, path, json=body)
                assert response.status_code == 404, (method, path, response.text)
                assert theirs.site.id not in response.text.replace(path, "")
                assert "Secret" not in response.text
            assert [s["id"] for s in (await api.get("/api/v1/sites")).json()["sites"]] == [mine.site.id]
        site = (await their_api.get(their_site)).json()
        assert (site["name"], site["disabled"]) == (theirs.site.name, False)
        assert (await their_api.get(f"{their_site}/goals")).json()["goals"] == [goal]


async def test_without_a_valid_token_every_route_is_401(stack: Stack) -> None:
    tenant = await stack.tenant("Locked")
    site = f"/api/v1/sites/{tenant.site.id}"
    async with httpx.AsyncClient(base_url=stack.dashboard, timeout=30) as anonymous:
        for method, path in [
            ("GET", "/api/v1/sites"),
            ("POST", "/api/v1/sites"),
            ("PATCH", site),
            ("DELETE", site),
            ("GET", f"{site}/goals"),
        ]:
            assert (await anonymous.request(method, path, json={})).status_code == 401
            forged = await anonymous.request(method, path, json={}, headers={"authorization": "Bearer x.y.z"})
            assert forged.status_code == 401


SITE_BODIES = [
    ({"domain": "x.example"}, "name"),
    ({"name": "", "domain": "x.example"}, "name"),
    ({"name": "   ", "domain": "x.example"}, "name"),
    ({"name": "x" * 256, "domain": "x.example"}, "name"),
    ({"name": "bad\x07name", "domain": "x.example"}, "name"),
    ({"name": 5, "domain": "x.example"}, "name"),
    ({"name": "Site"}, "domain"),
    ({"name": "Site", "domain": "tab\there"}, "domain"),
    ({"name": "Site", "domain": "x.example", "timezone": "Mars/Olympus"}, "timezone"),
    ({"name": "Site", "domain": "x.example", "timezone": "localtime"}, "timezone"),
    ({"name": "Site", "domain": "x.example", "timezone": "x" * 65}, "timezone"),
    ({"name": "Site", "domain": "x.example", "allowed_hosts": ["not a host"]}, "allowed_hosts"),
    ({"name": "Site", "domain": "x.example", "allowed_hosts": "x.example"}, "allowed_hosts"),
    (
        {"name": "Site", "domain": "x.example", "allowed_hosts": [f"h{i}.example" for i in range(51)]},
        "allowed_hosts",
    ),
    ({"name": "Site", "domain": "x.example", "owner": "me"}, "owner"),
]


@pytest.mark.parametrize(("body", "field"), SITE_BODIES)
async def test_an_invalid_new_site_is_a_400_naming_the_field(
    refused: tuple[Tenant, httpx.AsyncClient], body: dict[str, Any], field: str
) -> None:
    _, api = refused
    response = await api.post("/api/v1/sites", json=body)
    assert response.status_code == 400, response.text
    assert _field_named(response.json(), field), response.text
    assert len((await api.get("/api/v1/sites")).json()["sites"]) == 1


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"name": ""}, "name"),
        ({"name": None}, "name"),
        ({"disabled": "yes"}, "disabled"),
        ({"timezone": "Nowhere"}, "timezone"),
        ({"allowed_hosts": ["exa mple"]}, "allowed_hosts"),
        ({"id": "another"}, "id"),
        ({"tenant_id": "another"}, "tenant_id"),
    ],
)
async def test_an_invalid_site_change_is_a_400_naming_the_field_and_changes_nothing(
    refused: tuple[Tenant, httpx.AsyncClient], body: dict[str, Any], field: str
) -> None:
    tenant, api = refused
    path = f"/api/v1/sites/{tenant.site.id}"
    before = (await api.get(path)).json()
    # Valid changes alongside the invalid one are not applied either.
    response = await api.patch(path, json={"domain": "changed.example", **body})
    assert response.status_code == 400, response.text
    assert _field_named(response.json(), field), response.text
    assert (await api.get(path)).json() == before


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"kind": "event", "pattern": "x"}, "name"),
        ({"name": "n" * 121, "kind": "event", "pattern": "x"}, "name"),
        ({"name": "line\nbreak", "kind": "event", "pattern": "x"}, "name"),
        ({"name": "Goal", "kind": "pageview", "pattern": "/"}, "kind"),
        ({"name": "Goal", "pattern": "/"}, "kind"),
        ({"name": "Goal", "kind": "page", "pattern": "blog"}, "pattern"),
        ({"name": "Goal", "kind": "page", "pattern": "/" + "a" * 2048}, "pattern"),
        ({"name": "Goal", "kind": "page", "pattern": "/a b"}, "pattern"),
        ({"name": "Goal", "kind": "event", "pattern": "e" * 121}, "pattern"),
        ({"name": "Goal", "kind": "event", "pattern": ""}, "pattern"),
        ({"name": "Goal", "kind": "event", "pattern": "x", "site_id": "other"}, "site_id"),
    ],
)
async def test_an_invalid_goal_is_a_400_naming_the_field(
    refused: tuple[Tenant, httpx.AsyncClient], body: dict[str, Any], field: str
) -> None:
    tenant, api = refused
    goals = f"/api/v1/sites/{tenant.site.id}/goals"
    response = await api.post(goals, json=body)
    assert response.status_code == 400, response.text
    assert _field_named(response.json(), field), response.text
    assert (await api.get(goals)).json() == {"goals": []}


async def test_a_goal_change_is_checked_against_the_kind_it_will_have(
    owner: tuple[Tenant, httpx.AsyncClient],
) -> None:
    tenant, api = owner
    goals = f"/api/v1/sites/{tenant.site.id}/goals"
    goal = (await api.post(goals, json={"name": "Signup", "kind": "event", "pattern": "signup"})).json()
    response = await api.patch(f"{goals}/{goal['id']}", json={"kind": "page"})
    assert response.status_code == 400
    assert _field_named(response.json(), "pattern")
    assert (await api.get(f"{goals}/{goal['id']}")).json() == goal


async def test_malformed_json_is_a_400(refused: tuple[Tenant, httpx.AsyncClient]) -> None:
    _, api = refused
    response = await api.post(
        "/api/v1/sites", content=b'{"name": ', headers={"content-type": "application/json"}
    )
    assert response.status_code == 400
    assert response.json()["error"]


async def test_the_management_routes_are_in_the_openapi_schema(stack: Stack) -> None:
    async with httpx.AsyncClient(base_url=stack.dashboard, timeout=30) as client:
        schema = (await client.get("/api/schema/openapi.json")).json()
    paths = schema["paths"]
    assert set(paths["/api/v1/sites"]) >= {"get", "post"}
    assert set(paths["/api/v1/sites/{site_id}"]) >= {"get", "patch", "delete"}
    assert set(paths["/api/v1/sites/{site_id}/goals"]) >= {"get", "post"}
    assert set(paths["/api/v1/sites/{site_id}/goals/{goal_id}"]) >= {"get", "patch", "delete"}
    assert "/api/v1/sites/{site_id}/stream" in paths
    components = schema["components"]["schemas"]
    assert {"SiteOut", "NewSite", "SiteChanges", "GoalOut", "NewGoal", "GoalChanges"} <= set(components)
    assert components["NewSite"]["properties"]["name"]["maxLength"] == 255
