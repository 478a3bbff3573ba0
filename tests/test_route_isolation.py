"""Tenant A's credentials against tenant B's resources, on every route the product serves.

Two tenants with the same site name and events; A attacks B with B's ids in the path, the
query, the body and the filters, on both isolation tiers. Each answer must be a refusal
(403/404, or 400/401 where the route takes no id of B) and carry none of B's data, and B must
be unchanged afterwards.

`CASES` lists every route of the dashboard and the collector; `PUBLIC` the ones that take no
tenant credentials, each with the reason. A route in neither fails
`test_every_route_is_in_the_isolation_suite`: a new route comes with its attack.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

import httpx
import msgspec
import pytest
from litestar import Litestar

from dashboard_client import login
from pulse.collector.app import create_collector_app
from pulse.dashboard.app import create_dashboard_app
from pulse.oltp.api_keys import ApiKeys
from pulse.oltp.goals import Goals
from pulse.oltp.invitations import Invitations
from pulse.oltp.members import Members
from pulse.oltp.share_links import ShareLinks
from pulse.resources import Resources
from stack import Stack, Tenant
from tiers import TIERS, Tier, put_on

Credential = Literal["user", "key", "session"]
REFUSED = frozenset({403, 404})
USER_AGENT = (
    "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0 Safari/537.36"
)


@dataclass
class World:
    stack: Stack
    a: Tenant
    b: Tenant
    tokens: dict[Credential, str]
    b_goal: str
    b_key: str
    b_key_secret: str
    # Strings only B's data contains: none may appear in an answer to A.
    b_markers: tuple[str, ...]
    b_page: str
    # B's owner (a user id) and a pending invitation of B's.
    b_owner: str
    b_invitation: str
    # B's share link, and the token that opens it.
    b_share: str
    b_share_token: str


@dataclass(frozen=True)
class Probe:
    """One request A makes; `url` and `body` are built from the world, so they can name B's ids."""

    url: Callable[[World], str]
    credential: Credential
    expect: frozenset[int] = REFUSED
    body: Callable[[World], Any] | None = None
    # The collector serves this route, not the dashboard.
    collector: bool = False
    stream: bool = False
    params: dict[str, str] = field(default_factory=dict)
    # The body is a page's form (URL-encoded), not JSON.
    form: bool = False


def _site_b(w: World) -> str:
    return w.b.site.id


def _api(path: str) -> Callable[[World], str]:
    return lambda w: "/api/v1" + path.format(a=w.a.site.id, b=w.b.site.id, goal=w.b_goal, key=w.b_key)


def _both(url: Callable[[World], str], **kwargs: Any) -> list[Probe]:
    """The same attack with a user's token and with an API key holding every permission."""
    return [Probe(url, "user", **kwargs), Probe(url, "key", **kwargs)]


def _query_b_page(w: World) -> dict[str, Any]:
    return {"metrics": ["pageviews"], "dimensions": ["page"], "filters": [["page", "is", [w.b_page]]]}


def _event_for_b(w: World) -> dict[str, Any]:
    return {"site": w.b.site.id, "url": "https://b.example/x", "user_agent": USER_AGENT, "ip": "203.0.113.9"}


def _invite_b(w: World) -> dict[str, str]:
    return {"email": w.b.email, "role": "admin"}


def _viewer(w: World) -> dict[str, str]:
    return {"role": "viewer"}


CASES: dict[tuple[str, str], list[Probe]] = {
    # Pages: B's site in the path.
    ("GET", "/sites"): [Probe(lambda w: "/sites", "session", expect=frozenset({200}))],
    ("GET", "/sites/{site_id:str}"): [
        Probe(lambda w: f"/sites/{w.b.site.id}", "session"),
        # B's page as a filter on A's own overview: answered, with none of B's figures in it.
        Probe(lambda w: f"/sites/{w.a.site.id}?f=page,is,{w.b_page}", "session", expect=frozenset({200})),
    ],
    ("GET", "/sites/{site_id:str}/panels/{panel:str}"): [
        Probe(lambda w: f"/sites/{w.b.site.id}/panels/pages", "session"),
        Probe(
            lambda w: f"/sites/{w.a.site.id}/panels/pages?f=page,is,{w.b_page}",
            "session",
            expect=frozenset({200}),
        ),
    ],
    ("GET", "/sites/{site_id:str}/export/{file:str}"): [
        Probe(lambda w: f"/sites/{w.b.site.id}/export/pages.csv", "session"),
        Probe(lambda w: f"/sites/{w.b.site.id}/export/goals.csv", "session"),
        Probe(
            lambda w: f"/sites/{w.a.site.id}/export/pages.csv?f=page,is,{w.b_page}",
            "session",
            expect=frozenset({200}),
        ),
    ],
    ("GET", "/sites/{site_id:str}/live"): [
        Probe(lambda w: f"/sites/{w.b.site.id}/live", "session", stream=True)
    ],
    # Site pages: B's site in the path of every form and page.
    ("GET", "/sites/new"): [Probe(lambda w: "/sites/new", "session", expect=frozenset({200}))],
    # B's tenant id in the form is ignored: the site made is A's (the answer is its redirect).
    ("POST", "/sites/new"): [
        Probe(
            lambda w: "/sites/new",
            "session",
            body=lambda w: {"name": "taken", "domain": "taken.example", "tenant_id": w.b.tenant_id},
            form=True,
            expect=frozenset({303}),
        )
    ],
    ("GET", "/sites/{site_id:str}/settings"): [Probe(lambda w: f"/sites/{w.b.site.id}/settings", "session")],
    ("POST", "/sites/{site_id:str}/settings"): [
        Probe(
            lambda w: f"/sites/{w.b.site.id}/settings",
            "session",
            body=lambda w: {"name": "taken", "domain": "taken.example"},
            form=True,
        )
    ],
    ("POST", "/sites/{site_id:str}/disable"): [
        Probe(lambda w: f"/sites/{w.b.site.id}/disable", "session", form=True)
    ],
    ("POST", "/sites/{site_id:str}/enable"): [
        Probe(lambda w: f"/sites/{w.b.site.id}/enable", "session", form=True)
    ],
    ("GET", "/sites/{site_id:str}/install"): [Probe(lambda w: f"/sites/{w.b.site.id}/install", "session")],
    ("GET", "/sites/{site_id:str}/install/status"): [
        Probe(lambda w: f"/sites/{w.b.site.id}/install/status", "session")
    ],
    ("GET", "/sites/{site_id:str}/realtime"): [Probe(lambda w: f"/sites/{w.b.site.id}/realtime", "session")],
    # Goals and share-link pages: B's site, goal and link in the path; A's site with B's goal or link.
    ("GET", "/sites/{site_id:str}/goals"): [Probe(lambda w: f"/sites/{w.b.site.id}/goals", "session")],
    ("POST", "/sites/{site_id:str}/goals"): [
        Probe(
            lambda w: f"/sites/{w.b.site.id}/goals",
            "session",
            body=lambda w: {"name": "taken", "kind": "page", "pattern": "/x"},
            form=True,
        )
    ],
    ("POST", "/sites/{site_id:str}/goals/{goal_id:str}/delete"): [
        Probe(lambda w: f"/sites/{w.b.site.id}/goals/{w.b_goal}/delete", "session", form=True),
        Probe(lambda w: f"/sites/{w.a.site.id}/goals/{w.b_goal}/delete", "session", form=True),
    ],
    ("GET", "/sites/{site_id:str}/share"): [Probe(lambda w: f"/sites/{w.b.site.id}/share", "session")],
    ("POST", "/sites/{site_id:str}/share"): [
        Probe(
            lambda w: f"/sites/{w.b.site.id}/share", "session", body=lambda w: {"label": "taken"}, form=True
        )
    ],
    ("POST", "/sites/{site_id:str}/share/{link_id:str}/revoke"): [
        Probe(lambda w: f"/sites/{w.b.site.id}/share/{w.b_share}/revoke", "session", form=True),
        Probe(lambda w: f"/sites/{w.a.site.id}/share/{w.b_share}/revoke", "session", form=True),
    ],
    # Team: B's owner and B's invitation in the path; the page lists A's team only.
    ("GET", "/team"): [Probe(lambda w: "/team", "session", expect=frozenset({200}))],
    ("POST", "/team/invitations"): [
        # B's owner's email: refused as an existing account, naming only what A sent.
        Probe(lambda w: "/team/invitations", "session", body=_invite_b, form=True, expect=frozenset({400}))
    ],
    ("POST", "/team/invitations/{invitation_id:str}/revoke"): [
        Probe(lambda w: f"/team/invitations/{w.b_invitation}/revoke", "session", form=True)
    ],
    ("POST", "/team/members/{user_id:str}/role"): [
        Probe(lambda w: f"/team/members/{w.b_owner}/role", "session", body=_viewer, form=True)
    ],
    ("POST", "/team/members/{user_id:str}/remove"): [
        Probe(lambda w: f"/team/members/{w.b_owner}/remove", "session", form=True)
    ],
    # Stats.
    ("GET", "/api/v1/sites/{site_id:str}/aggregate"): _both(_api("/sites/{b}/aggregate")),
    ("GET", "/api/v1/sites/{site_id:str}/timeseries"): _both(_api("/sites/{b}/timeseries")),
    ("GET", "/api/v1/sites/{site_id:str}/realtime"): _both(_api("/sites/{b}/realtime")),
    ("GET", "/api/v1/sites/{site_id:str}/stream"): _both(_api("/sites/{b}/stream"), stream=True),
    ("POST", "/api/v1/sites/{site_id:str}/query"): [
        *_both(_api("/sites/{b}/query"), body=lambda w: {"metrics": ["visitors"]}),
        # B's page as a filter and a dimension on A's own site: answered, with nothing of B's in it.
        *_both(_api("/sites/{a}/query"), body=_query_b_page, expect=frozenset({200})),
    ],
    # Management: B's site and goal in the path, B's tenant in the body.
    ("GET", "/api/v1/sites"): _both(_api("/sites"), expect=frozenset({200})),
    ("POST", "/api/v1/sites"): _both(
        _api("/sites"),
        body=lambda w: {"name": "taken", "domain": "taken.example", "tenant_id": w.b.tenant_id},
        expect=frozenset({400}),
    ),
    ("GET", "/api/v1/sites/{site_id:str}"): _both(_api("/sites/{b}")),
    ("PATCH", "/api/v1/sites/{site_id:str}"): _both(_api("/sites/{b}"), body=lambda w: {"name": "taken"}),
    ("DELETE", "/api/v1/sites/{site_id:str}"): _both(_api("/sites/{b}")),
    ("GET", "/api/v1/sites/{site_id:str}/goals"): _both(_api("/sites/{b}/goals")),
    ("POST", "/api/v1/sites/{site_id:str}/goals"): _both(
        _api("/sites/{b}/goals"), body=lambda w: {"name": "taken", "kind": "page", "pattern": "/x"}
    ),
    ("GET", "/api/v1/sites/{site_id:str}/goals/{goal_id:str}"): [
        *_both(_api("/sites/{b}/goals/{goal}")),
        # A's own site with B's goal: the goal is looked up within A's site, not by id alone.
        *_both(_api("/sites/{a}/goals/{goal}")),
    ],
    ("PATCH", "/api/v1/sites/{site_id:str}/goals/{goal_id:str}"): [
        *_both(_api("/sites/{b}/goals/{goal}"), body=lambda w: {"name": "taken"}),
        *_both(_api("/sites/{a}/goals/{goal}"), body=lambda w: {"name": "taken"}),
    ],
    ("DELETE", "/api/v1/sites/{site_id:str}/goals/{goal_id:str}"): [
        *_both(_api("/sites/{b}/goals/{goal}")),
        *_both(_api("/sites/{a}/goals/{goal}")),
    ],
    # Keys: only a user manages keys (an API key is refused 403); B's key id in the path.
    ("GET", "/api/v1/keys"): [
        Probe(_api("/keys"), "user", expect=frozenset({200})),
        Probe(_api("/keys"), "key", expect=frozenset({403})),
    ],
    ("POST", "/api/v1/keys"): _both(
        _api("/keys"),
        body=lambda w: {"name": "taken", "permissions": ["stats:read"], "tenant_id": w.b.tenant_id},
        expect=frozenset({400, 403}),
    ),
    ("DELETE", "/api/v1/keys/{key_id:str}"): _both(_api("/keys/{key}")),
    # Exchanging credentials names no resource of B's: B's email without B's password is a wrong login.
    ("POST", "/api/v1/token"): [
        Probe(
            _api("/token"),
            "user",
            body=lambda w: {"email": w.b.email, "password": "not B's password"},
            expect=frozenset({401}),
        ),
        Probe(
            _api("/token"),
            "user",
            body=lambda w: {"api_key": w.b_key_secret[:-4] + "AAAA"},
            expect=frozenset({401}),
        ),
    ],
    # Ingestion: A's key may write events, but only for A's sites.
    ("POST", "/api/v1/events"): [Probe(_api("/events"), "key", body=_event_for_b, collector=True)],
}

# Routes that take no tenant credentials, and why that is safe.
PUBLIC: dict[tuple[str, str], str] = {
    ("GET", "/"): "redirects to the sites page",
    ("GET", "/login"): "the login form",
    ("POST", "/login"): "checks a password; answers a session for the user's own tenant only",
    ("POST", "/logout"): "clears the caller's own cookie",
    ("GET", "/healthz"): "liveness for the load balancer; names no tenant",
    ("GET", "/metrics"): "Prometheus scrape for operators, served on the role's port",
    ("GET", "/static/{file_path:path}"): "the dashboard's CSS and JavaScript",
    ("HEAD", "/static/{file_path:path}"): "the dashboard's CSS and JavaScript",
    ("GET", "/api/v1/openapi.json"): "the API's schema, the same for everyone",
    (
        "POST",
        "/api/event",
    ): "beacons: the site key is public (it is in every page's snippet); answers a count",
    ("POST", "/api/events"): "beacon batches, as /api/event",
    ("GET", "/p.js"): "the tracker script",
    ("GET", "/invite/{token:str}"): "the invitation link: its secret token is the credential, for one tenant",
    ("POST", "/invite/{token:str}"): "sets the invitee's password; needs the link's secret token",
    # tests/test_share_links.py proves each: other sites' ids in paths and queries, revoked links, passwords.
    ("GET", "/share/{token:str}"): "authorised by the share token, scoped to its one site",
    ("GET", "/share/{token:str}/panels/{panel:str}"): "authorised by the share token, scoped to its one site",
    ("GET", "/share/{token:str}/export/{file:str}"): "authorised by the share token, scoped to its one site",
    ("GET", "/share/{token:str}/live"): "authorised by the share token, scoped to its one site",
    ("POST", "/share/{token:str}/unlock"): "checks the share link's password, throttled per client IP",
}
# Routes Litestar's OpenAPI plugin adds: schema documents and their viewers.
PUBLIC_PREFIXES = ("/api/schema", "/schema")


def _pinned_tracker(method: str, path: str) -> bool:
    """The tracker's content-addressed copy, /p.<hash>.js."""
    return method == "GET" and path.startswith("/p.") and path.endswith(".js")


def _routes(app: Litestar) -> set[tuple[str, str]]:
    return {
        (method, route.path)
        for route in app.routes
        for method in getattr(route, "methods", ())
        if method != "OPTIONS"
    }


async def test_every_route_is_in_the_isolation_suite(stack: Stack) -> None:
    settings = msgspec.structs.replace(stack.settings, metrics_enabled=False)
    resources = Resources(settings)
    try:
        dashboard, collector = create_dashboard_app(resources), create_collector_app(settings)
        assert isinstance(dashboard, Litestar)
        assert isinstance(collector, Litestar)
        served = _routes(dashboard) | _routes(collector)
    finally:
        await resources.close()
    unlisted = sorted(
        (method, path)
        for method, path in served
        if (method, path) not in CASES
        and (method, path) not in PUBLIC
        and not path.startswith(PUBLIC_PREFIXES)
        and not _pinned_tracker(method, path)
    )
    assert unlisted == [], "add each route to CASES (with its attack) or to PUBLIC (with the reason)"
    assert sorted(set(CASES) - served) == [], "CASES names routes no app serves"


@pytest.fixture(scope="module", params=TIERS)
async def world(stack: Stack, request: pytest.FixtureRequest) -> World:
    tier: Tier = request.param
    tag = secrets.token_hex(4)
    # The same names on both sides: nothing may be told apart by name alone.
    a, b = await stack.tenant(f"Isolation{tag}"), await stack.tenant(f"Isolation{tag}")
    await put_on(stack, tier, a, b)
    engine = stack.engine
    b_page = f"/b-private-{tag}"
    goal = await Goals(engine).create(b.tenant_id, b.site.id, f"B goal {tag}", "page", b_page)
    b_owner = (await Members(engine).list(b.tenant_id))[0].user_id
    b_invited = f"b-invited-{tag}@example.com"
    b_invitation, _ = await Invitations(engine).create(b.tenant_id, b_owner, b_invited, "admin")
    b_share, b_share_token = await ShareLinks(engine).create(b.tenant_id, b.site.id, f"B share {tag}")
    b_key, b_secret = await ApiKeys(engine).create(b.tenant_id, f"B key {tag}", ["stats:read"], "test")
    _, a_secret = await ApiKeys(engine).create(
        a.tenant_id, f"A key {tag}", ["stats:read", "events:write", "sites:write"], "test"
    )
    async with httpx.AsyncClient(base_url=stack.collector, headers={"user-agent": USER_AGENT}) as collector:
        for path in (b_page, "/"):
            sent = await collector.post("/api/event", json={"s": b.site.id, "u": f"https://b.example{path}"})
            assert sent.status_code == 202, sent.text
    await stack.counts(b, {"pageviews": 2})
    async with httpx.AsyncClient(base_url=stack.dashboard, timeout=30) as client:
        exchanged = await client.post("/api/v1/token", json={"api_key": a_secret})
        assert exchanged.status_code == 200, exchanged.text
        browser = httpx.AsyncClient(base_url=stack.dashboard, timeout=30)
        await login(browser, a.email, a.password)
        session = browser.cookies.get("pulse_session")
        await browser.aclose()
    assert session
    return World(
        stack=stack,
        a=a,
        b=b,
        tokens={"user": await stack.token(a), "key": exchanged.json()["token"], "session": session},
        b_goal=goal.id,
        b_key=b_key.id,
        b_key_secret=b_secret,
        b_markers=(
            *(b.site.id, b.tenant_id, b.email, b_page, goal.id, goal.name, b_key.id, b_key.name),
            *(b_owner, b_invitation.id, b_invited),
            *(b_share.id, b_share.label),
        ),
        b_page=b_page,
        b_owner=b_owner,
        b_invitation=b_invitation.id,
        b_share=b_share.id,
        b_share_token=b_share_token,
    )


async def _send(w: World, probe: Probe, method: str) -> tuple[int, str]:
    base = w.stack.settings.collector_url if probe.collector else w.stack.dashboard
    if probe.credential == "session":
        client = httpx.AsyncClient(base_url=base, cookies={"pulse_session": w.tokens["session"]}, timeout=30)
    else:
        client = httpx.AsyncClient(
            base_url=base, headers={"authorization": f"Bearer {w.tokens[probe.credential]}"}, timeout=30
        )
    async with client:
        headers: dict[str, str] = {}
        if probe.credential == "session" and method != "GET":
            # A page's form carries the CSRF token: the attack gets past it, to the tenant check.
            await client.get("/login")
            headers["x-csrftoken"] = client.cookies["csrftoken"]
        body = probe.body(w) if probe.body else None
        request = client.build_request(
            method,
            probe.url(w),
            **({"data": body} if probe.form else {"json": body}),
            params=probe.params,
            headers=headers,
            timeout=10,
        )
        if probe.stream:
            response = await client.send(request, stream=True)
            # A stream that opened would never end: its first bytes are enough to judge it.
            text = ""
            if response.status_code == 200:
                async for chunk in response.aiter_text():
                    text = chunk
                    break
            else:
                text = (await response.aread()).decode()
            await response.aclose()
            return response.status_code, text
        response = await client.send(request)
        return response.status_code, response.text


@pytest.mark.parametrize("route", sorted(CASES), ids=lambda route: f"{route[0]} {route[1]}")
async def test_a_cannot_reach_b(world: World, route: tuple[str, str]) -> None:
    method = route[0]
    offsets = await world.stack.raw_end_offsets()
    for probe in CASES[route]:
        status, text = await _send(world, probe, method)
        where = f"{method} {probe.url(world)} as {probe.credential}"
        assert status in probe.expect, f"{where}: {status} {text[:300]}"
        # An id A sent may come back in the error that refuses it; nothing else of B's may.
        sent = probe.url(world) + json.dumps(probe.body(world) if probe.body else None)
        leaked = [marker for marker in world.b_markers if marker in text and marker not in sent]
        assert leaked == [], f"{where} answered B's {leaked}"
    assert await world.stack.raw_end_offsets() == offsets, "an attack wrote events"


async def test_b_is_unchanged_after_every_attack(world: World) -> None:
    """Runs after the attacks (pytest keeps file order): B's site, goal, key and figures are intact."""
    b = world.b
    site = await world.stack.accounts.get_site(b.tenant_id, b.site.id)
    assert site is not None
    assert (site.name, site.disabled) == (b.site.name, False)
    engine = world.stack.engine
    goal = await Goals(engine).get(b.tenant_id, world.b_goal)
    assert goal is not None
    assert goal.name.startswith("B goal")
    async with httpx.AsyncClient(base_url=world.stack.dashboard, timeout=30) as client:
        exchanged = await client.post("/api/v1/token", json={"api_key": world.b_key_secret})
    assert exchanged.status_code == 200, "B's key was revoked by an attack"
    members = await Members(engine).list(b.tenant_id)
    assert [(m.user_id, m.role) for m in members] == [(world.b_owner, "owner")]
    pending = await Invitations(engine).pending(b.tenant_id)
    assert [i.id for i in pending] == [world.b_invitation]
    assert await ShareLinks(engine).open(world.b_share_token) is not None, "B's share link was revoked"
    assert await world.stack.counts(b, {"pageviews": 2}, timeout_s=5) == {"pageviews": 2}


# Routes that read figures or settings: a key without stats:read gets 403 on A's own site.
READS = (
    ("GET", "/api/v1/sites/{a}/aggregate"),
    ("GET", "/api/v1/sites/{a}/timeseries"),
    ("GET", "/api/v1/sites/{a}/realtime"),
    ("GET", "/api/v1/sites/{a}/stream"),
    ("POST", "/api/v1/sites/{a}/query"),
    ("GET", "/api/v1/sites"),
    ("GET", "/api/v1/sites/{a}"),
    ("GET", "/api/v1/sites/{a}/goals"),
)


@pytest.mark.parametrize(("method", "path"), READS, ids=[f"{m} {p}" for m, p in READS])
async def test_a_key_without_stats_read_reads_nothing(world: World, method: str, path: str) -> None:
    _, secret = await ApiKeys(world.stack.engine).create(
        world.a.tenant_id, "writer", ["events:write"], "test"
    )
    async with httpx.AsyncClient(base_url=world.stack.dashboard, timeout=30) as client:
        token = (await client.post("/api/v1/token", json={"api_key": secret})).json()["token"]
        url = "/api/v1" + path.removeprefix("/api/v1").format(a=world.a.site.id)
        body = {"metrics": ["visitors"]} if method == "POST" else None
        response = await client.request(method, url, json=body, headers={"authorization": f"Bearer {token}"})
    assert response.status_code == 403, response.text
    assert response.json()["missing_permission"] == "stats:read"
