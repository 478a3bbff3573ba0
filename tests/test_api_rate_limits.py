"""Per-caller limits on the API, shared by replicas through Redis; per-IP limits on token requests.

Each test serves dashboard apps of its own with small limits, beside the session's stack and on
its Redis and database.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator

import httpx
import msgspec
from sqlalchemy.ext.asyncio import AsyncEngine

from dashboard_client import CSRF_FIELD
from pulse.auth.tokens import TokenService
from pulse.dashboard.app import create_dashboard_app
from pulse.embedded.services import free_port
from pulse.oltp.api_keys import ApiKeys
from pulse.resources import Resources
from pulse.settings import Settings
from stack import Stack, Tenant, serving

LIMIT = 5


@contextlib.asynccontextmanager
async def _dashboard(settings: Settings) -> AsyncIterator[str]:
    resources = Resources(settings)
    try:
        async with serving(create_dashboard_app(resources), free_port()) as url:
            yield url
    finally:
        await resources.close()


def _limited(stack: Stack, **changes: object) -> Settings:
    return msgspec.structs.replace(
        stack.settings,
        metrics_enabled=False,
        api_rate_limit_per_min=LIMIT,
        login_rate_limit_per_min=3,
        **changes,
    )


async def _well_inside_a_window() -> None:
    """Counting windows are whole minutes: start where the next few seconds stay in one."""
    into = time.time() % 60
    if into > 50:
        await asyncio.sleep(60 - into + 0.1)


async def _key_token(engine: AsyncEngine, settings: Settings, tenant: Tenant, name: str) -> str:
    key, _ = await ApiKeys(engine).create(tenant.tenant_id, name, ["stats:read"], created_by="test")
    return (await TokenService(settings, engine).issue_api(key)).token


async def test_a_key_over_its_limit_gets_429_across_replicas_and_another_key_does_not(stack: Stack) -> None:
    settings = _limited(stack)
    tenant = await stack.tenant("RateLimited")
    busy = await _key_token(stack.engine, settings, tenant, "Busy")
    quiet = await _key_token(stack.engine, settings, tenant, "Quiet")
    path = f"/api/v1/sites/{tenant.site.id}/aggregate"
    async with _dashboard(settings) as one, _dashboard(settings) as two, httpx.AsyncClient() as client:
        await _well_inside_a_window()
        answers = [
            await client.get(f"{replica}{path}", headers={"authorization": f"Bearer {busy}"})
            for replica in (one, two, one, two, one, two)
        ]
        other = await client.get(f"{two}{path}", headers={"authorization": f"Bearer {quiet}"})
        no_token = await client.get(f"{one}{path}")

    assert [a.status_code for a in answers] == [200] * LIMIT + [429]
    assert [a.headers["x-ratelimit-remaining"] for a in answers] == ["4", "3", "2", "1", "0", "0"]
    assert {a.headers["x-ratelimit-limit"] for a in answers} == {str(LIMIT)}
    refused = answers[-1]
    assert 1 <= int(refused.headers["retry-after"]) <= 60
    assert refused.json()["error"].startswith(f"rate limit of {LIMIT} requests per minute exceeded")
    assert "visitors" not in refused.text
    assert other.status_code == 200
    assert other.headers["x-ratelimit-remaining"] == str(LIMIT - 1)
    # Without a valid token nobody is counted, and the answer is the 401.
    assert no_token.status_code == 401
    assert "x-ratelimit-remaining" not in no_token.headers


async def test_while_redis_is_down_each_replica_still_limits(stack: Stack) -> None:
    # Nothing listens on this port.
    settings = _limited(stack, redis_url=f"redis://127.0.0.1:{free_port()}/0")
    tenant = await stack.tenant("RateLimitedNoRedis")
    token = await _key_token(stack.engine, settings, tenant, "Busy")
    path = f"/api/v1/sites/{tenant.site.id}/aggregate"
    async with _dashboard(settings) as url, httpx.AsyncClient(base_url=url) as client:
        answers = [
            await client.get(path, headers={"authorization": f"Bearer {token}"}) for _ in range(LIMIT + 2)
        ]
    assert [a.status_code for a in answers] == [200] * LIMIT + [429, 429]
    assert int(answers[-1].headers["retry-after"]) >= 1
    assert answers[0].headers["x-ratelimit-limit"] == str(LIMIT)


async def test_token_requests_and_logins_are_limited_per_client_ip(stack: Stack) -> None:
    tenant = await stack.tenant("LoginLimited")
    # 127.0.0.1 is a trusted proxy in the test settings, so the forwarded address is the client's.
    guesser, other = {"x-forwarded-for": "203.0.113.7"}, {"x-forwarded-for": "198.51.100.9"}
    wrong = {"email": tenant.email, "password": "not the password"}
    async with _dashboard(_limited(stack)) as url, httpx.AsyncClient(base_url=url) as client:
        attempts = [await client.post("/api/v1/token", json=wrong, headers=guesser) for _ in range(4)]
        right = {"email": tenant.email, "password": tenant.password}
        still_refused = await client.post("/api/v1/token", json=right, headers=guesser)
        elsewhere = await client.post("/api/v1/token", json=right, headers=other)
        form = await client.get("/login")
        match = CSRF_FIELD.search(form.text)
        assert match
        page = await client.post(
            "/login", data={**right, "_csrf_token": match.group(1)}, headers=guesser, follow_redirects=False
        )
    assert [a.status_code for a in attempts] == [401, 401, 401, 429]
    assert still_refused.status_code == 429
    assert int(still_refused.headers["retry-after"]) >= 1
    assert "too many token requests" in still_refused.json()["error"]
    assert elsewhere.status_code == 200
    assert page.status_code == 429
    assert "Too many attempts" in page.text
    assert "pulse_session" not in page.headers.get("set-cookie", "")
