"""Tokens name the tenant; no route lets one tenant read another's site."""

from __future__ import annotations

import time

import httpx
import jwt
import pytest

from dashboard_client import login
from pulse.auth.tokens import TokenService
from pulse.tenancy import TenantScope
from pulse.warehouse.client import Warehouse
from pulse.warehouse.reader import ScopedQuery, ScopedReader, SharedDatabase
from stack import Stack

API_ROUTES = ("aggregate", "timeseries", "realtime")


async def test_another_tenants_site_is_not_found_on_every_api_route(stack: Stack) -> None:
    owner, intruder = await stack.tenant("Owner"), await stack.tenant("Intruder")
    token = await stack.token(intruder)
    async with httpx.AsyncClient(
        base_url=stack.dashboard, headers={"authorization": f"Bearer {token}"}
    ) as api:
        for route in API_ROUTES:
            response = await api.get(f"/api/v1/sites/{owner.site.id}/{route}")
            assert response.status_code == 404, route
            assert owner.site.id not in response.text or response.json() == {"error": "no such site"}


async def test_another_tenants_site_is_not_found_on_pages_and_live_stream(stack: Stack) -> None:
    owner, intruder = await stack.tenant("PageOwner"), await stack.tenant("PageIntruder")
    async with httpx.AsyncClient(base_url=stack.dashboard) as browser:
        await login(browser, intruder.email, intruder.password)
        sites = await browser.get("/sites")
        assert intruder.site.id in sites.text
        assert owner.site.id not in sites.text
        assert (await browser.get(f"/sites/{owner.site.id}")).status_code == 404
        assert (await browser.get(f"/sites/{owner.site.id}/live")).status_code == 404


@pytest.mark.parametrize(
    "forge",
    [
        pytest.param(lambda claims, key: "not-a-jwt", id="garbage"),
        pytest.param(lambda claims, key: jwt.encode(claims, None, algorithm="none"), id="alg-none"),
        pytest.param(lambda claims, key: jwt.encode(claims, b"x" * 32, algorithm="HS256"), id="wrong-key"),
        pytest.param(lambda claims, key: jwt.encode(claims, key * 2, algorithm="HS512"), id="other-alg"),
        pytest.param(
            lambda claims, key: jwt.encode({**claims, "exp": int(time.time()) - 10}, key, algorithm="HS256"),
            id="expired",
        ),
        pytest.param(
            lambda claims, key: jwt.encode({**claims, "aud": "other"}, key, algorithm="HS256"), id="audience"
        ),
        pytest.param(
            lambda claims, key: jwt.encode({**claims, "iss": "other"}, key, algorithm="HS256"), id="issuer"
        ),
    ],
)
async def test_forged_or_stale_tokens_are_refused(stack: Stack, forge: object) -> None:
    tenant = await stack.tenant("Forged")
    genuine = await stack.token(tenant)
    claims = jwt.decode(genuine, options={"verify_signature": False})
    key = TokenService(stack.settings)._key
    token = forge(claims, key)  # type: ignore[operator]
    async with httpx.AsyncClient(base_url=stack.dashboard) as api:
        response = await api.get(
            f"/api/v1/sites/{tenant.site.id}/aggregate", headers={"authorization": f"Bearer {token}"}
        )
    assert response.status_code == 401
    assert "visitors" not in response.text


async def test_no_token_and_wrong_password_are_refused(stack: Stack) -> None:
    tenant = await stack.tenant("NoToken")
    async with httpx.AsyncClient(base_url=stack.dashboard) as api:
        assert (await api.get(f"/api/v1/sites/{tenant.site.id}/aggregate")).status_code == 401
        wrong = await api.post("/api/v1/token", json={"email": tenant.email, "password": "wrong password"})
        assert wrong.status_code == 401
        page = await api.get(f"/sites/{tenant.site.id}")
        assert page.status_code == 303
        assert page.headers["location"] == "/login"


def test_a_query_without_the_tenant_filter_cannot_be_built() -> None:
    with pytest.raises(ValueError, match="does not filter on"):
        ScopedQuery("leaky", "SELECT count() FROM events WHERE site_id = {site_id:String}")


async def test_the_tenant_comes_from_the_scope_not_from_parameters(stack: Stack) -> None:
    query = ScopedQuery("one", "SELECT 1 WHERE tenant_id = {tenant_id:String}")
    warehouse = Warehouse(stack.settings.effective_clickhouse_url, stack.settings.clickhouse_database)
    reader = ScopedReader(warehouse, SharedDatabase(warehouse.database))
    scope = TenantScope.of_user("a", "u", "viewer")
    with pytest.raises(ValueError, match="come from the scope"):
        await reader.select(scope, query, {"tenant_id": "b"})
