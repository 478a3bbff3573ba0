"""POST /api/v1/events on the real collector: server-side events with a bearer token, end to end."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import msgspec
import pytest

from pulse.collector.app import create_collector_app
from pulse.embedded.services import free_port
from stack import Stack, Tenant, serving
from visitor import USER_AGENT

EVENTS = "/api/v1/events"


def _event(site: str, **fields: Any) -> dict[str, Any]:
    return {
        "site": site,
        "url": "https://api.example/pricing",
        "user_agent": USER_AGENT,
        "ip": "203.0.113.9",
    } | fields


def _bearer(token: str) -> dict[str, str]:
    return {"authorization": f"Bearer {token}"}


async def _post(stack: Stack, token: str | None, body: object) -> httpx.Response:
    headers = {} if token is None else _bearer(token)
    content = body if isinstance(body, bytes) else msgspec.json.encode(body)
    async with httpx.AsyncClient(base_url=stack.collector, timeout=30) as client:
        return await client.post(
            EVENTS, content=content, headers=headers | {"content-type": "application/json"}
        )


async def _api_key_token(stack: Stack, tenant: Tenant, permissions: list[str]) -> str:
    async with httpx.AsyncClient(
        base_url=stack.dashboard, headers=_bearer(await stack.token(tenant)), timeout=30
    ) as api:
        created = await api.post("/api/v1/keys", json={"name": "backend", "permissions": permissions})
        assert created.status_code == 201, created.text
        exchanged = await api.post("/api/v1/token", json={"api_key": created.json()["secret"]})
        assert exchanged.status_code == 200, exchanged.text
        return str(exchanged.json()["token"])


async def test_events_sent_through_the_api_are_counted(stack: Stack) -> None:
    tenant = await stack.tenant("Backend")
    site = tenant.site.id
    token = await _api_key_token(stack, tenant, ["events:write"])
    one = await _post(stack, token, _event(site))
    assert (one.status_code, one.json()) == (202, {"accepted": 1}), one.text
    an_hour_ago = (datetime.now(UTC) - timedelta(hours=1)).isoformat()
    batch = [
        _event(site, url="https://api.example/", ip="198.51.100.4", timestamp=an_hour_ago),
        _event(site, name="purchase", visitor="customer-42", ip="", props={"plan": "pro"}),
    ]
    many = await _post(stack, token, batch)
    assert (many.status_code, many.json()) == (202, {"accepted": 2}), many.text
    # A user's token may send too: an owner has events:write.
    assert (await _post(stack, await stack.token(tenant), _event(site))).status_code == 202
    counted = {"pageviews": 3, "events": 4}
    assert await stack.counts(tenant, counted) == counted


async def test_another_tenants_site_is_unknown_and_nothing_is_written(stack: Stack) -> None:
    mine, theirs = await stack.tenant("Sender"), await stack.tenant("Target")
    token = await stack.token(mine)
    before = await stack.raw_end_offsets()
    alone = await _post(stack, token, _event(theirs.site.id))
    assert alone.status_code == 404, alone.text
    assert alone.json()["field"] == "$.site"
    assert theirs.site.id in alone.json()["error"]
    # With an event of its own first, the batch is refused whole.
    mixed = await _post(stack, token, [_event(mine.site.id), _event(theirs.site.id)])
    assert mixed.status_code == 404
    assert mixed.json()["field"] == "$[1].site"
    # The same answer as for a key nobody has: the other tenant's site cannot be told apart.
    missing = await _post(stack, token, _event("nosuchsitekk"))
    assert missing.status_code == 404
    assert missing.json()["error"].replace("nosuchsitekk", theirs.site.id) == alone.json()["error"]
    assert await stack.raw_end_offsets() == before


async def test_a_disabled_site_and_a_host_not_allowed_are_refused(stack: Stack) -> None:
    tenant = await stack.tenant("Guarded")
    token = await stack.token(tenant)
    other = await stack.accounts.create_site(tenant.tenant_id, "Old", "old.example")
    await stack.accounts.set_disabled(tenant.tenant_id, other.id, disabled=True)
    await stack.accounts.set_allowed_hosts(tenant.tenant_id, tenant.site.id, ["guarded.example"])
    before = await stack.raw_end_offsets()
    disabled = await _post(stack, token, _event(other.id))
    assert disabled.status_code == 403, disabled.text
    assert "disabled" in disabled.json()["error"]
    elsewhere = await _post(
        stack, token, [_event(tenant.site.id, url="https://guarded.example/"), _event(tenant.site.id)]
    )
    assert elsewhere.status_code == 403, elsewhere.text
    assert elsewhere.json()["field"] == "$[1].url"
    assert await stack.raw_end_offsets() == before
    allowed = await _post(stack, token, _event(tenant.site.id, url="https://guarded.example/"))
    assert allowed.status_code == 202


async def test_credentials_are_required_and_must_allow_writing_events(stack: Stack) -> None:
    tenant = await stack.tenant("Credentials")
    event = _event(tenant.site.id)
    before = await stack.raw_end_offsets()
    missing = await _post(stack, None, event)
    assert missing.status_code == 401
    assert missing.headers["www-authenticate"].startswith("Bearer")
    assert (await _post(stack, "not.a.jwt", event)).status_code == 401
    user_token = await stack.token(tenant)
    tampered = user_token[:-4] + ("AAAA" if not user_token.endswith("AAAA") else "BBBB")
    assert (await _post(stack, tampered, event)).status_code == 401

    reader = await _api_key_token(stack, tenant, ["stats:read"])
    forbidden = await _post(stack, reader, event)
    assert forbidden.status_code == 403, forbidden.text
    assert forbidden.json()["missing_permission"] == "events:write"

    email = f"viewer-{tenant.email}"
    await stack.accounts.create_user(email, tenant.password, tenant.tenant_id, "viewer")
    viewer = await stack.token(
        Tenant(tenant_id=tenant.tenant_id, email=email, password=tenant.password, site=tenant.site)
    )
    assert (await _post(stack, viewer, event)).status_code == 403
    assert await stack.raw_end_offsets() == before


def _long_ago() -> str:
    return (datetime.now(UTC) - timedelta(days=2)).isoformat()


def _malformed(site: str) -> list[tuple[object, str, str]]:
    """(body, field, a word the error must contain)."""
    good = _event(site)
    return [
        (b"{not json", "$", "JSON"),
        (b"[1, 2", "$", "JSON"),
        ([], "$", "at least one"),
        ([good] * 101, "$", "at most 100"),
        ("just a string", "$", "object"),
        (_event(site, url="not a url"), "$.url", "url"),
        ([good, _event(site, url=5)], "$[1].url", "str"),
        ([good, good, _event(site, user_agent="")], "$[2].user_agent", "user_agent"),
        (_event(site, ip=""), "$.visitor", "visitor"),
        (_event(site, ip="999.1.1.1"), "$.ip", "IP"),
        (_event(site, timestamp=_long_ago()), "$.timestamp", "old"),
        (_event(site, timestamp="2026-01-01T00:00:00"), "$.timestamp", "zone"),
        (_event(site, name=""), "$.name", "length"),
        (_event(site, props={f"k{i}": "v" for i in range(31)}), "$.props", "30"),
        (_event(site, props={"plan": 5}), "$.props[...]", "str"),
        ([good, _event(site, s="shortcut")], "$[1]", "unknown field `s`"),
        (_event(site, visitor="has spaces"), "$.visitor", "match"),
    ]


async def test_malformed_payloads_are_400_naming_the_event_and_field(stack: Stack) -> None:
    tenant = await stack.tenant("Malformed")
    token = await stack.token(tenant)
    before = await stack.raw_end_offsets()
    for body, field, word in _malformed(tenant.site.id):
        response = await _post(stack, token, body)
        assert response.status_code == 400, (body, response.text)
        answer = response.json()
        assert answer["field"] == field, (body, answer)
        assert word in answer["error"], (body, answer)
        if field.startswith("$["):
            assert answer["error"].startswith(f"event {field[2]}: "), answer
    assert await stack.raw_end_offsets() == before


async def test_bot_user_agents_are_dropped_silently(stack: Stack) -> None:
    tenant = await stack.tenant("Crawled")
    before = await stack.raw_end_offsets()
    response = await _post(stack, await stack.token(tenant), _event(tenant.site.id, user_agent="curl/8.5.0"))
    assert (response.status_code, response.json()) == (202, {"accepted": 0})
    assert await stack.raw_end_offsets() == before


async def test_a_token_is_limited_per_minute(stack: Stack) -> None:
    settings = msgspec.structs.replace(stack.settings, api_rate_limit_per_min=2, metrics_enabled=False)
    tenant = await stack.tenant("Hasty")
    token = await stack.token(tenant)
    async with (
        serving(create_collector_app(settings), free_port()) as url,
        httpx.AsyncClient(base_url=url, timeout=30) as client,
    ):
        body = msgspec.json.encode(_event(tenant.site.id))
        answers = [(await client.post(EVENTS, content=body, headers=_bearer(token))) for _ in range(3)]
    assert [a.status_code for a in answers] == [202, 202, 429]
    assert int(answers[2].headers["retry-after"]) >= 1
    assert "token" in answers[2].json()["error"]


async def test_the_operation_is_in_the_collector_schema(stack: Stack) -> None:
    async with httpx.AsyncClient(base_url=stack.collector, timeout=30) as client:
        schema = (await client.get("/schema/openapi.json")).json()
    operation = schema["paths"][EVENTS]["post"]
    assert set(operation["responses"]) == {"202", "400", "401", "403", "404", "413", "429", "503"}
    one, many = operation["requestBody"]["content"]["application/json"]["schema"]["oneOf"]
    assert many["maxItems"] == stack.settings.max_batch_events
    assert {"site", "url", "user_agent", "ip", "visitor", "timestamp"} <= set(one["properties"])
    assert schema["components"]["securitySchemes"]["bearer"]["scheme"] == "bearer"


@pytest.mark.parametrize("scheme", ["Basic ", "Token ", ""])
async def test_only_a_bearer_token_is_taken(stack: Stack, scheme: str) -> None:
    tenant = await stack.tenant("Schemes")
    token = await stack.token(tenant)
    async with httpx.AsyncClient(base_url=stack.collector, timeout=30) as client:
        response = await client.post(
            EVENTS,
            content=msgspec.json.encode(_event(tenant.site.id)),
            headers={"authorization": f"{scheme}{token}"},
        )
    assert response.status_code == 401
