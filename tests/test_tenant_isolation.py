"""Tokens name the tenant; no route lets one tenant read another's site."""

from __future__ import annotations

import time
import uuid

import httpx
import jwt
import pytest

from dashboard_client import login
from pulse.auth.keyring import key_material
from pulse.tenancy import TenantScope
from pulse.warehouse.client import Warehouse
from pulse.warehouse.reader import ScopedQuery, ScopedReader, SharedDatabase
from stack import Stack
from tiers import Tier, on_both_tiers, put_on
from visitor import BROWSER

API_ROUTES = ("aggregate", "timeseries", "realtime")


@on_both_tiers
async def test_another_tenants_site_is_not_found_on_every_api_route(stack: Stack, tier: Tier) -> None:
    owner, intruder = await stack.tenant("Owner"), await stack.tenant("Intruder")
    await put_on(stack, tier, owner, intruder)
    token = await stack.token(intruder)
    async with httpx.AsyncClient(
        base_url=stack.dashboard, headers={"authorization": f"Bearer {token}"}, timeout=30
    ) as api:
        for route in API_ROUTES:
            response = await api.get(f"/api/v1/sites/{owner.site.id}/{route}")
            assert response.status_code == 404, route
            assert owner.site.id not in response.text or response.json() == {"error": "no such site"}


@on_both_tiers
async def test_another_tenants_site_is_not_found_on_pages_and_live_stream(stack: Stack, tier: Tier) -> None:
    owner, intruder = await stack.tenant("PageOwner"), await stack.tenant("PageIntruder")
    await put_on(stack, tier, owner, intruder)
    async with httpx.AsyncClient(base_url=stack.dashboard, timeout=30) as browser:
        await login(browser, intruder.email, intruder.password)
        sites = await browser.get("/sites")
        assert intruder.site.id in sites.text
        assert owner.site.id not in sites.text
        assert (await browser.get(f"/sites/{owner.site.id}")).status_code == 404
        assert (await browser.get(f"/sites/{owner.site.id}/live")).status_code == 404


def _signed(claims: dict[str, object], key: bytes, kid: str, algorithm: str = "HS256") -> str:
    return jwt.encode(claims, key, algorithm=algorithm, headers={"kid": kid})


# Every rejection, case by case and with its reason, is in test_jwt_rejection.py.
@pytest.mark.parametrize(
    "forge",
    [
        pytest.param(lambda claims, key, kid: "not-a-jwt", id="garbage"),
        pytest.param(lambda claims, key, kid: jwt.encode(claims, None, algorithm="none"), id="alg-none"),
        pytest.param(lambda claims, key, kid: _signed(claims, b"x" * 32, kid), id="wrong-key"),
        pytest.param(lambda claims, key, kid: _signed(claims, key * 2, kid, "HS512"), id="other-alg"),
        pytest.param(
            lambda claims, key, kid: _signed({**claims, "exp": int(time.time()) - 10}, key, kid), id="expired"
        ),
        pytest.param(lambda claims, key, kid: _signed({**claims, "aud": "other"}, key, kid), id="audience"),
        pytest.param(lambda claims, key, kid: _signed({**claims, "iss": "other"}, key, kid), id="issuer"),
        pytest.param(
            lambda claims, key, kid: _signed({**claims, "tid": uuid.uuid4().hex}, key, kid), id="other-tenant"
        ),
    ],
)
async def test_forged_or_stale_tokens_are_refused(stack: Stack, forge: object) -> None:
    tenant = await stack.tenant("Forged")
    genuine = await stack.token(tenant)
    claims = jwt.decode(genuine, options={"verify_signature": False})
    kid = jwt.get_unverified_header(genuine)["kid"]
    token = forge(claims, key_material(stack.settings.secret_key, kid), kid)  # type: ignore[operator]
    async with httpx.AsyncClient(base_url=stack.dashboard, timeout=30) as api:
        response = await api.get(
            f"/api/v1/sites/{tenant.site.id}/aggregate", headers={"authorization": f"Bearer {token}"}
        )
    assert response.status_code == 401
    assert "visitors" not in response.text


@on_both_tiers
async def test_each_tenant_reads_its_own_figures_only(stack: Stack, tier: Tier) -> None:
    first, second = await stack.tenant("FiguresOne"), await stack.tenant("FiguresTwo")
    await put_on(stack, tier, first, second)
    async with httpx.AsyncClient(base_url=stack.collector, headers=BROWSER) as collector:
        for tenant, pageviews in ((first, 3), (second, 5)):
            for i in range(pageviews):
                body = f'{{"s": "{tenant.site.id}", "u": "https://{tenant.site.domain}/{i}"}}'
                assert (await collector.post("/api/event", content=body)).status_code == 202
    assert await stack.counts(first, {"pageviews": 3}) == {"pageviews": 3}
    assert await stack.counts(second, {"pageviews": 5}) == {"pageviews": 5}


@on_both_tiers
async def test_no_token_and_wrong_password_are_refused(stack: Stack, tier: Tier) -> None:
    tenant = await stack.tenant("NoToken")
    await put_on(stack, tier, tenant)
    async with httpx.AsyncClient(base_url=stack.dashboard, timeout=30) as api:
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
