"""The team page against the real stack: invitations, roles, and what each role is refused.

Every request goes through the real login form (or the invitation link) and the real CSRF
token; the rules are the server's, so the forms a page hides are posted here anyway.
"""

from __future__ import annotations

import hashlib
import re
import secrets
import time
import uuid
from collections.abc import AsyncIterator

import httpx
import msgspec
import pytest
from litestar import Litestar
from sqlalchemy import text

from dashboard_client import CSRF_FIELD, login
from pulse.dashboard.app import create_dashboard_app
from pulse.oltp.api_keys import ApiKeys
from pulse.oltp.goals import Goals
from pulse.oltp.invitations import INVITATION_TTL_MS, Invitations
from pulse.oltp.members import Member, Members
from pulse.resources import Resources
from stack import Stack, Tenant

LINK = re.compile(r'id="invite-link" type="text" value="([^"]+)"')
PASSWORD = "a long enough password"


class Browser:
    """An httpx client that behaves like a browser on the dashboard's forms."""

    def __init__(self, stack: Stack) -> None:
        self.client = httpx.AsyncClient(base_url=stack.dashboard, timeout=30)

    async def csrf(self, page: str = "/team") -> str:
        match = CSRF_FIELD.search((await self.client.get(page)).text)
        assert match, f"{page} carries a CSRF token"
        return match.group(1)

    async def post(
        self, path: str, data: dict[str, str] | None = None, page: str = "/team"
    ) -> httpx.Response:
        return await self.client.post(path, data={**(data or {}), "_csrf_token": await self.csrf(page)})

    async def team(self) -> httpx.Response:
        return await self.client.get("/team")

    async def invite(self, email: str, role: str) -> str:
        """The link of a new invitation, as the page that made it shows it."""
        answer = await self.post("/team/invitations", {"email": email, "role": role})
        assert answer.status_code == 201, answer.text
        assert answer.headers["cache-control"] == "no-store"
        match = LINK.search(answer.text)
        assert match, "the answer shows the link"
        return match.group(1)

    async def aclose(self) -> None:
        await self.client.aclose()


@pytest.fixture
async def browsers(stack: Stack) -> AsyncIterator[list[Browser]]:
    """The browsers a test opens, closed at its end."""
    opened: list[Browser] = []
    yield opened
    for browser in opened:
        await browser.aclose()


async def _signed_in(stack: Stack, browsers: list[Browser], email: str, password: str) -> Browser:
    browser = Browser(stack)
    browsers.append(browser)
    answer = await login(browser.client, email, password)
    assert answer.status_code == 303, answer.text
    return browser


async def _join(stack: Stack, browsers: list[Browser], link: str) -> Browser:
    """A new browser that opens the link, sets a password and is signed in."""
    browser = Browser(stack)
    browsers.append(browser)
    path = httpx.URL(link).path
    form = await browser.client.get(path)
    assert form.status_code == 200, form.text
    assert form.headers["referrer-policy"] == "no-referrer"
    answer = await browser.post(path, {"password": PASSWORD, "confirm": PASSWORD}, page=path)
    assert answer.status_code == 303, answer.text
    assert answer.headers["location"] == "/sites"
    assert browser.client.cookies.get("pulse_session")
    return browser


async def _team(stack: Stack, browsers: list[Browser], name: str) -> tuple[Tenant, Browser]:
    tenant = await stack.tenant(f"{name}{secrets.token_hex(3)}")
    return tenant, await _signed_in(stack, browsers, tenant.email, tenant.password)


def _email(tag: str) -> str:
    return f"{tag}-{secrets.token_hex(4)}@example.com"


async def _members(stack: Stack, tenant: Tenant) -> dict[str, Member]:
    return {m.email: m for m in await Members(stack.engine).list(tenant.tenant_id)}


async def _roles(stack: Stack, tenant: Tenant) -> dict[str, str]:
    return {email: m.role for email, m in (await _members(stack, tenant)).items()}


async def test_an_owner_invites_an_admin_and_a_viewer_who_join_through_their_links(
    stack: Stack, browsers: list[Browser]
) -> None:
    tenant, owner = await _team(stack, browsers, "Invites")
    admin_email, viewer_email = _email("admin"), _email("viewer")
    admin_link = await owner.invite(admin_email, "admin")
    viewer_link = await owner.invite(viewer_email, "viewer")
    assert admin_link.startswith(f"{stack.settings.dashboard_url}/invite/")

    page = (await owner.team()).text
    assert admin_email in page
    assert viewer_email in page
    assert page.count("expires ") == 2
    # Only a hash of the link's token is kept.
    token = admin_link.rsplit("/", 1)[1]
    async with stack.engine.connect() as conn:
        stored = (
            await conn.execute(
                text("SELECT token_hash FROM invitations WHERE email = :email"), {"email": admin_email}
            )
        ).scalar_one()
    assert stored == hashlib.sha256(token.encode()).hexdigest()

    admin = await _join(stack, browsers, admin_link)
    viewer = await _join(stack, browsers, viewer_link)
    assert (await admin.client.get("/sites")).status_code == 200
    assert await _roles(stack, tenant) == {
        tenant.email: "owner",
        admin_email: "admin",
        viewer_email: "viewer",
    }
    # The password set through the link is the one the login form takes.
    again = await _signed_in(stack, browsers, viewer_email, PASSWORD)
    assert (await again.team()).status_code == 200

    page = (await owner.team()).text
    assert "No pending invitations." in page
    viewer_page = (await viewer.team()).text
    assert admin_email in viewer_page
    assert "Your role (viewer) can see the team" in viewer_page
    # A viewer gets the list, without a single form to change it.
    assert "/team/members/" not in viewer_page
    assert "/team/invitations" not in viewer_page


async def test_a_viewer_is_refused_every_change_on_the_server(stack: Stack, browsers: list[Browser]) -> None:
    tenant, owner = await _team(stack, browsers, "ViewerRefused")
    viewer_email = _email("viewer")
    viewer = await _join(stack, browsers, await owner.invite(viewer_email, "viewer"))
    await owner.invite(_email("pending"), "viewer")
    pending = (await Invitations(stack.engine).pending(tenant.tenant_id))[0]
    goal = await Goals(stack.engine).create(tenant.tenant_id, tenant.site.id, "Signup", "page", "/signup")
    key, _ = await ApiKeys(stack.engine).create(tenant.tenant_id, "Kept", ["stats:read"], "test")
    owner_id = (await _members(stack, tenant))[tenant.email].user_id
    ids = {
        "site_id": tenant.site.id,
        "goal_id": goal.id,
        "user_id": owner_id,
        "invitation_id": pending.id,
        "key_id": key.id,
    }
    form = {
        "email": _email("sneaky"),
        "role": "owner",
        "name": "Renamed by a viewer",
        "domain": "viewer.example",
        "kind": "page",
        "pattern": "/x",
        "password": PASSWORD,
    }

    changes = await _changing_routes(stack)
    # The signed-in pages' changes; /login, /invite and share links' pages take no session.
    pages = sorted(route for route in changes if route[1].startswith(("/team/", "/sites/")))
    team_routes = [path for _, path in pages if path.startswith("/team/")]
    assert len(team_routes) == 4, "the team's four changes are among the refused routes"
    assert any(path.startswith("/sites/") for _, path in pages), "site and goal pages are refused too"
    for method, path in pages:
        url = _filled(path, ids)
        answer = await viewer.client.request(
            method, url, data={**form, "_csrf_token": await viewer.csrf()}, follow_redirects=False
        )
        assert answer.status_code == 403, f"{method} {url}: {answer.status_code} {answer.text[:300]}"
        assert "Your role (viewer) cannot change this" in answer.text, f"{method} {url}"
        assert answer.headers["content-type"].startswith("text/html")

    token = viewer.client.cookies["pulse_session"]
    api = sorted(route for route in changes if route in API_BODIES)
    assert len(api) >= 6
    for method, path in api:
        url = _filled(path, ids)
        answer = await viewer.client.request(
            method, url, json=API_BODIES[(method, path)], headers={"authorization": f"Bearer {token}"}
        )
        assert answer.status_code == 403, f"{method} {url}: {answer.status_code} {answer.text[:300]}"

    assert await _roles(stack, tenant) == {tenant.email: "owner", viewer_email: "viewer"}
    assert [i.id for i in await Invitations(stack.engine).pending(tenant.tenant_id)] == [pending.id]
    site = await stack.accounts.get_site(tenant.tenant_id, tenant.site.id)
    assert site is not None
    assert (site.name, site.disabled) == (tenant.site.name, False)
    assert await Goals(stack.engine).get(tenant.tenant_id, goal.id) is not None
    assert [k.revoked_at for k in await ApiKeys(stack.engine).list(tenant.tenant_id)] == [None]


# Mutating API routes with a body each would accept from a permitted caller.
API_BODIES: dict[tuple[str, str], object] = {
    ("POST", "/api/v1/sites"): {"name": "x", "domain": "x.example"},
    ("PATCH", "/api/v1/sites/{site_id:str}"): {"name": "x"},
    ("DELETE", "/api/v1/sites/{site_id:str}"): None,
    ("POST", "/api/v1/sites/{site_id:str}/goals"): {"name": "x", "kind": "page", "pattern": "/x"},
    ("PATCH", "/api/v1/sites/{site_id:str}/goals/{goal_id:str}"): {"name": "x"},
    ("DELETE", "/api/v1/sites/{site_id:str}/goals/{goal_id:str}"): None,
    ("POST", "/api/v1/keys"): {"name": "x", "permissions": ["stats:read"]},
    ("DELETE", "/api/v1/keys/{key_id:str}"): None,
}
PARAM = re.compile(r"\{(\w+):\w+\}")


def _filled(path: str, ids: dict[str, str]) -> str:
    # A parameter the test has no object for gets an id that names nothing: refused all the same.
    return PARAM.sub(lambda m: ids.get(m.group(1), uuid.uuid4().hex), path)


async def _changing_routes(stack: Stack) -> set[tuple[str, str]]:
    """Every route of the dashboard that takes POST, PUT, PATCH or DELETE."""
    resources = Resources(msgspec.structs.replace(stack.settings, metrics_enabled=False))
    try:
        app = create_dashboard_app(resources)
        assert isinstance(app, Litestar)
        routes = {
            (method, route.path)
            for route in app.routes
            for method in getattr(route, "methods", ())
            if method in {"POST", "PUT", "PATCH", "DELETE"}
        }
    finally:
        await resources.close()
    return routes


async def test_an_admin_cannot_make_touch_or_remove_an_owner(stack: Stack, browsers: list[Browser]) -> None:
    tenant, owner = await _team(stack, browsers, "AdminLimits")
    admin_email, viewer_email = _email("admin"), _email("viewer")
    admin = await _join(stack, browsers, await owner.invite(admin_email, "admin"))
    await _join(stack, browsers, await owner.invite(viewer_email, "viewer"))
    members = await _members(stack, tenant)
    owner_id, viewer_id = members[tenant.email].user_id, members[viewer_email].user_id

    refused = [
        (
            "/team/invitations",
            {"email": _email("new-owner"), "role": "owner"},
            "only an owner can invite an owner",
        ),
        (
            f"/team/members/{viewer_id}/role",
            {"role": "owner"},
            "only an owner can grant or take away the owner role",
        ),
        (
            f"/team/members/{owner_id}/role",
            {"role": "viewer"},
            "only an owner can grant or take away the owner role",
        ),
        (f"/team/members/{owner_id}/remove", {}, "only an owner can remove an owner"),
    ]
    for path, data, reason in refused:
        answer = await admin.post(path, data)
        assert answer.status_code == 403, f"{path}: {answer.text[:300]}"
        assert f"{reason}; your role is admin" in answer.text
    assert await _roles(stack, tenant) == {
        tenant.email: "owner",
        admin_email: "admin",
        viewer_email: "viewer",
    }
    # Everything short of the owner role is an admin's to change.
    owner_invitation = await owner.invite(_email("future-owner"), "owner")
    assert owner_invitation
    assert (await admin.post(f"/team/members/{viewer_id}/role", {"role": "admin"})).status_code == 303
    removed = await admin.post(f"/team/members/{viewer_id}/remove")
    assert (removed.status_code, removed.headers["location"]) == (303, "/team?done=removed")
    assert "Member removed" in (await admin.client.get("/team?done=removed")).text
    assert await _roles(stack, tenant) == {tenant.email: "owner", admin_email: "admin"}
    # ...but not revoking an invitation to be an owner.
    invitation = next(
        i for i in await Invitations(stack.engine).pending(tenant.tenant_id) if i.role == "owner"
    )
    answer = await admin.post(f"/team/invitations/{invitation.id}/revoke")
    assert answer.status_code == 403
    assert "only an owner can revoke an invitation to be an owner" in answer.text


async def test_the_last_owner_can_be_neither_removed_nor_demoted(
    stack: Stack, browsers: list[Browser]
) -> None:
    tenant, owner = await _team(stack, browsers, "LastOwner")
    owner_id = (await _members(stack, tenant))[tenant.email].user_id
    for path, data in (
        (f"/team/members/{owner_id}/remove", {}),
        (f"/team/members/{owner_id}/role", {"role": "admin"}),
    ):
        answer = await owner.post(path, data)
        assert answer.status_code == 409, answer.text
        assert "is the team&#39;s last owner" in answer.text
    assert await _roles(stack, tenant) == {tenant.email: "owner"}

    # With a second owner, the first may step down; their session follows the new role at once.
    second_email = _email("second-owner")
    second = await _join(stack, browsers, await owner.invite(second_email, "owner"))
    assert (await owner.post(f"/team/members/{owner_id}/role", {"role": "admin"})).status_code == 303
    second_id = (await _members(stack, tenant))[second_email].user_id
    answer = await owner.post(f"/team/members/{second_id}/remove")
    assert answer.status_code == 403, "the demoted owner's token still says owner; the store reads the role"
    assert "your role is admin" in answer.text
    # The remaining owner is now the last one.
    answer = await second.post(f"/team/members/{second_id}/role", {"role": "viewer"})
    assert answer.status_code == 409
    assert await _roles(stack, tenant) == {tenant.email: "admin", second_email: "owner"}


async def test_a_removed_member_loses_access_on_their_next_request(
    stack: Stack, browsers: list[Browser]
) -> None:
    tenant, owner = await _team(stack, browsers, "Removed")
    email = _email("leaving")
    leaving = await _join(stack, browsers, await owner.invite(email, "admin"))
    token = leaving.client.cookies["pulse_session"]
    user_id = (await _members(stack, tenant))[email].user_id
    assert (await owner.post(f"/team/members/{user_id}/remove")).status_code == 303

    page = await leaving.client.get("/team")
    assert (page.status_code, page.headers["location"]) == (303, "/login")
    api = await leaving.client.get("/api/v1/sites", headers={"authorization": f"Bearer {token}"})
    assert api.status_code == 401
    assert "no longer a member" in api.json()["error"]
    # The account went with its only team: the email can be invited again.
    rejoined = await _join(stack, browsers, await owner.invite(email, "viewer"))
    assert (await rejoined.team()).status_code == 200


async def test_expired_used_revoked_and_unknown_links_are_refused(
    stack: Stack, browsers: list[Browser]
) -> None:
    tenant, owner = await _team(stack, browsers, "Links")
    owner_id = (await _members(stack, tenant))[tenant.email].user_id
    eight_days_ago = time.time() - (INVITATION_TTL_MS / 1000 + 86400)
    _, expired = await Invitations(stack.engine, clock=lambda: eight_days_ago).create(
        tenant.tenant_id, owner_id, _email("late"), "viewer"
    )
    used_link = await owner.invite(_email("used"), "viewer")
    await _join(stack, browsers, used_link)
    revoked_email = _email("revoked")
    revoked_link = await owner.invite(revoked_email, "viewer")
    revoked = next(
        i for i in await Invitations(stack.engine).pending(tenant.tenant_id) if i.email == revoked_email
    )
    answer = await owner.post(f"/team/invitations/{revoked.id}/revoke")
    assert (answer.status_code, answer.headers["location"]) == (303, "/team?done=revoked")
    assert "Invitation revoked" in (await owner.client.get("/team?done=revoked")).text
    page = (await owner.team()).text
    assert "expired" in page, "the expired invitation is listed as expired"

    stranger = Browser(stack)
    browsers.append(stranger)
    cases = {
        f"/invite/{expired}": (410, "has expired"),
        httpx.URL(used_link).path: (410, "has been used already"),
        httpx.URL(revoked_link).path: (404, "is not valid"),
        f"/invite/{secrets.token_urlsafe(32)}": (404, "is not valid"),
        "/invite/" + "x" * 300: (404, "is not valid"),
    }
    for path, (status, message) in cases.items():
        shown = await stranger.client.get(path)
        assert (shown.status_code, message in shown.text) == (status, True), f"GET {path}: {shown.text[:200]}"
        posted = await stranger.post(path, {"password": PASSWORD, "confirm": PASSWORD}, page="/login")
        assert (posted.status_code, message in posted.text) == (status, True), f"POST {path}"
        assert "pulse_session" not in stranger.client.cookies


async def test_a_bad_password_or_a_taken_email_is_refused_with_the_reason(
    stack: Stack, browsers: list[Browser]
) -> None:
    tenant, owner = await _team(stack, browsers, "BadPasswords")
    email = _email("twice")
    link = httpx.URL(await owner.invite(email, "viewer")).path
    invitee = Browser(stack)
    browsers.append(invitee)
    for password, confirm, reason in (
        ("short", "short", "The password must be 10 to 1024 characters long."),
        ("x" * 1025, "x" * 1025, "The password must be 10 to 1024 characters long."),
        (PASSWORD, PASSWORD + "!", "The two passwords differ."),
    ):
        answer = await invitee.post(link, {"password": password, "confirm": confirm}, page=link)
        assert answer.status_code == 400, answer.text
        assert reason in answer.text
    assert "pulse_session" not in invitee.client.cookies

    # Inviting an email that has an account is refused, in this team or another.
    answer = await owner.post("/team/invitations", {"email": tenant.email.upper(), "role": "viewer"})
    assert answer.status_code == 400
    assert "is already a member of this team" in answer.text
    other = await stack.tenant(f"Other{secrets.token_hex(3)}")
    answer = await owner.post("/team/invitations", {"email": other.email, "role": "viewer"})
    assert answer.status_code == 400
    assert "already has a Pulse account with another team" in answer.text
    answer = await owner.post("/team/invitations", {"email": "not an email", "role": "viewer"})
    assert answer.status_code == 400
    assert "email must be a single address" in answer.text
    answer = await owner.post("/team/invitations", {"email": _email("x"), "role": "root"})
    assert answer.status_code == 400
    assert "role must be one of owner, admin, viewer" in answer.text

    # Two teams invite the same email: the first link accepted makes the account, the other then says so.
    other_owner = await _signed_in(stack, browsers, other.email, other.password)
    await _join(stack, browsers, await other_owner.invite(email, "admin"))
    answer = await invitee.post(link, {"password": PASSWORD, "confirm": PASSWORD}, page=link)
    assert answer.status_code == 409
    assert "An account with this email exists already" in answer.text


async def test_emails_render_inert(stack: Stack, browsers: list[Browser]) -> None:
    _, owner = await _team(stack, browsers, "Escaping")
    email = f"<script>alert({secrets.token_hex(2)})</script>@evil.example"
    link = await owner.invite(email, "viewer")
    page = (await owner.team()).text
    assert "<script>alert(" not in page
    assert "&lt;script&gt;alert(" in page
    shown = (await owner.client.get(httpx.URL(link).path)).text
    assert "<script>alert(" not in shown


async def test_one_tenant_cannot_touch_another_tenants_members_or_invitations(
    stack: Stack, browsers: list[Browser]
) -> None:
    a, a_owner = await _team(stack, browsers, "TeamA")
    b, b_owner = await _team(stack, browsers, "TeamB")
    b_viewer_email = _email("b-viewer")
    await _join(stack, browsers, await b_owner.invite(b_viewer_email, "viewer"))
    b_pending_email = _email("b-pending")
    await b_owner.invite(b_pending_email, "admin")
    b_members = await _members(stack, b)
    b_invitation = (await Invitations(stack.engine).pending(b.tenant_id))[0]

    attacks = [
        (f"/team/members/{b_members[b.email].user_id}/role", {"role": "viewer"}),
        (f"/team/members/{b_members[b.email].user_id}/remove", {}),
        (f"/team/members/{b_members[b_viewer_email].user_id}/role", {"role": "admin"}),
        (f"/team/members/{b_members[b_viewer_email].user_id}/remove", {}),
        (f"/team/invitations/{b_invitation.id}/revoke", {}),
    ]
    for path, data in attacks:
        answer = await a_owner.post(path, data)
        assert answer.status_code == 404, f"{path}: {answer.status_code}"
        for marker in (b.email, b_viewer_email, b_pending_email):
            assert marker not in answer.text
    a_page = (await a_owner.team()).text
    assert b.email not in a_page
    assert b_pending_email not in a_page
    assert await _roles(stack, b) == {b.email: "owner", b_viewer_email: "viewer"}
    assert [i.id for i in await Invitations(stack.engine).pending(b.tenant_id)] == [b_invitation.id]
    assert await _roles(stack, a) == {a.email: "owner"}


async def test_an_api_key_cannot_hold_the_members_permission(stack: Stack) -> None:
    tenant = await stack.tenant(f"KeyMembers{secrets.token_hex(3)}")
    with pytest.raises(ValueError, match="an API key cannot hold members:write"):
        await ApiKeys(stack.engine).create(tenant.tenant_id, "x", ["members:write"], "test")
    token = await stack.token(tenant)
    async with httpx.AsyncClient(base_url=stack.dashboard, timeout=30) as api:
        answer = await api.post(
            "/api/v1/keys",
            json={"name": "x", "permissions": ["stats:read", "members:write"]},
            headers={"authorization": f"Bearer {token}"},
        )
    assert answer.status_code == 400
    assert "an API key cannot hold members:write" in answer.text
