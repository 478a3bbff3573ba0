"""API keys: shown once, stored hashed, scoped to their tenant, revocable, exchanged for tokens."""

from __future__ import annotations

import hashlib
import time
from pathlib import Path

import httpx
import jwt
import msgspec
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from fake_clock import FakeClock
from pulse.auth.tokens import InvalidToken, TokenService
from pulse.oltp.accounts import Accounts
from pulse.oltp.api_keys import ApiKeys
from pulse.oltp.db import create_engine
from pulse.settings import load_settings
from pulse_cli import run_pulse
from stack import Stack


async def _row(engine: AsyncEngine, key_id: str) -> dict[str, object]:
    async with engine.connect() as conn:
        row = (await conn.execute(text("SELECT * FROM api_keys WHERE id = :id"), {"id": key_id})).one()
    return dict(row._mapping)


async def test_a_key_is_shown_once_and_only_its_hash_is_stored(
    accounts: Accounts, oltp_engine: AsyncEngine
) -> None:
    tenant = await accounts.create_tenant("Keys")
    keys = ApiKeys(oltp_engine)
    key, full = await keys.create(tenant.id, " CI deploys ", ["events:write", "stats:read"], created_by="u1")
    prefix, key_id, secret = full.split("_", 2)
    assert (prefix, key_id) == ("pulse", key.id)
    assert len(secret) >= 43  # 32 random bytes, base64url
    assert key.name == "CI deploys"
    assert key.permissions == ("stats:read", "events:write")

    row = await _row(oltp_engine, key.id)
    assert row["secret_hash"] == hashlib.sha256(secret.encode()).hexdigest()
    assert all(secret not in str(value) for value in row.values())
    assert row["permissions"] == "stats:read,events:write"
    assert (row["created_by"], row["last_used_at"], row["revoked_at"]) == ("u1", None, None)

    listed = await keys.list(tenant.id)
    assert listed == [key]
    assert row["secret_hash"] not in msgspec.json.encode(listed).decode()

    assert await keys.authenticate(full) == key
    assert await keys.authenticate(f"pulse_{key.id}_{secret[:-1]}x") is None
    assert await keys.authenticate(f"pulse_{'0' * 32}_{secret}") is None
    assert await keys.authenticate("pulse_garbage") is None
    assert await keys.authenticate(full + "x" * 200) is None


async def test_revoking_is_scoped_to_the_tenant_and_stops_the_key(
    accounts: Accounts, oltp_engine: AsyncEngine
) -> None:
    owner, other = await accounts.create_tenant("Owner"), await accounts.create_tenant("Other")
    keys = ApiKeys(oltp_engine)
    key, full = await keys.create(owner.id, "Export", ["stats:read"], created_by="u1")

    assert await keys.revoke(other.id, key.id) is None
    assert await keys.authenticate(full) is not None
    assert await keys.list(other.id) == []

    revoked = await keys.revoke(owner.id, key.id)
    assert revoked is not None
    assert revoked.revoked_at is not None
    assert await keys.authenticate(full) is None
    again = await keys.revoke(owner.id, key.id)
    assert again is not None
    assert again.revoked_at == revoked.revoked_at
    assert await keys.revoke(owner.id, "f" * 32) is None
    assert await keys.revoke(owner.id, "not-an-id") is None


async def test_last_used_is_written_at_most_once_a_minute(
    accounts: Accounts, oltp_engine: AsyncEngine
) -> None:
    tenant = await accounts.create_tenant("Busy")
    clock = FakeClock()
    clock.now = 1_700_000_000.0
    keys = ApiKeys(oltp_engine, clock)
    key, full = await keys.create(tenant.id, "Busy key", ["stats:read"], created_by="u1")
    # Another replica: its own throttle, the same table.
    replica = ApiKeys(oltp_engine, clock)

    assert await keys.authenticate(full) is not None
    assert (await _row(oltp_engine, key.id))["last_used_at"] == 1_700_000_000_000
    clock.now += 30
    await keys.authenticate(full)
    await replica.touch(key.id)
    assert (await _row(oltp_engine, key.id))["last_used_at"] == 1_700_000_000_000
    clock.now += 31
    await keys.authenticate(full)
    assert (await _row(oltp_engine, key.id))["last_used_at"] == 1_700_000_061_000
    # The replica's own minute has passed, but the stored time is recent: it writes nothing.
    clock.now += 30
    await replica.touch(key.id)
    assert (await _row(oltp_engine, key.id))["last_used_at"] == 1_700_000_061_000


@pytest.mark.parametrize(
    ("name", "permissions", "message"),
    [
        ("", ["stats:read"], "name must not be empty"),
        ("x" * 101, ["stats:read"], "name must be at most 100 characters"),
        ("bell\x07", ["stats:read"], "name must not contain control characters"),
        ("ok", [], "permissions must name at least one of stats:read, events:write, sites:write"),
        ("ok", ["stats:read", "admin"], "unknown permission 'admin'"),
    ],
)
async def test_bad_names_and_permissions_are_refused(
    accounts: Accounts, oltp_engine: AsyncEngine, name: str, permissions: list[str], message: str
) -> None:
    tenant = await accounts.create_tenant("Strict")
    with pytest.raises(ValueError, match=message):
        await ApiKeys(oltp_engine).create(tenant.id, name, permissions, created_by="u1")
    assert await ApiKeys(oltp_engine).list(tenant.id) == []


async def test_a_key_for_an_unknown_tenant_is_refused(oltp_engine: AsyncEngine) -> None:
    with pytest.raises(ValueError, match="unknown tenant"):
        await ApiKeys(oltp_engine).create("0" * 32, "Nobody's", ["stats:read"], created_by="u1")


# Over HTTP, on the session's stack.


def _bearer(token: str) -> dict[str, str]:
    return {"authorization": f"Bearer {token}"}


async def _exchange(api: httpx.AsyncClient, full_key: str) -> httpx.Response:
    return await api.post("/api/v1/token", json={"api_key": full_key})


async def test_a_key_made_over_the_api_is_exchanged_used_and_revoked(stack: Stack) -> None:
    tenant = await stack.tenant("KeyLife")
    owner = await stack.token(tenant)
    async with httpx.AsyncClient(base_url=stack.dashboard, timeout=30) as api:
        made = await api.post(
            "/api/v1/keys", json={"name": "Reporting", "permissions": ["stats:read"]}, headers=_bearer(owner)
        )
        assert made.status_code == 201, made.text
        body = made.json()
        full, key_id = body["secret"], body["key"]["id"]
        assert full.startswith(f"pulse_{key_id}_")
        assert body["key"]["permissions"] == ["stats:read"]

        listed = await api.get("/api/v1/keys", headers=_bearer(owner))
        assert listed.status_code == 200
        assert [k["id"] for k in listed.json()["keys"]] == [key_id]
        assert full.split("_", 2)[2] not in listed.text
        assert "secret" not in listed.text
        assert listed.json()["keys"][0]["last_used_at"] is None

        exchanged = await _exchange(api, full)
        assert exchanged.status_code == 200, exchanged.text
        answer = exchanged.json()
        assert answer["token_type"] == "Bearer"
        assert answer["expires_in"] == stack.settings.api_token_ttl_s == 900
        assert (answer["tenant_id"], answer["permissions"], answer["role"]) == (
            tenant.tenant_id,
            ["stats:read"],
            None,
        )
        claims = jwt.decode(answer["token"], options={"verify_signature": False})
        assert (claims["kind"], claims["sub"], claims["tid"], claims["perms"]) == (
            "api_key",
            key_id,
            tenant.tenant_id,
            ["stats:read"],
        )
        assert claims["exp"] - claims["iat"] == 900

        stats = await api.get(f"/api/v1/sites/{tenant.site.id}/aggregate", headers=_bearer(answer["token"]))
        assert stats.status_code == 200, stats.text
        assert (await _row(stack.engine, key_id))["last_used_at"] is not None
        assert (await api.get("/api/v1/keys", headers=_bearer(owner))).json()["keys"][0]["last_used_at"]

        assert (await api.delete(f"/api/v1/keys/{key_id}", headers=_bearer(owner))).status_code == 204
        refused = await _exchange(api, full)
        assert refused.status_code == 401
        assert refused.json()["error"] == "unknown or revoked API key"
        # The replica that revoked the key refuses its tokens at once.
        after = await api.get(f"/api/v1/sites/{tenant.site.id}/aggregate", headers=_bearer(answer["token"]))
        assert after.status_code == 401
        assert "API key is revoked" in after.json()["error"]
        assert "visitors" not in after.text
        assert (await api.delete(f"/api/v1/keys/{'f' * 32}", headers=_bearer(owner))).status_code == 404


@pytest.mark.serial  # the refusal is timed against the cache window
async def test_a_key_revoked_elsewhere_is_refused_within_the_cache_window(stack: Stack) -> None:
    tenant = await stack.tenant("KeyRevokedElsewhere")
    key, full = await ApiKeys(stack.engine).create(tenant.tenant_id, "Ops", ["stats:read"], created_by="u1")
    async with httpx.AsyncClient(base_url=stack.dashboard, timeout=30) as api:
        token = (await _exchange(api, full)).json()["token"]
        path = f"/api/v1/sites/{tenant.site.id}/aggregate"
        assert (await api.get(path, headers=_bearer(token))).status_code == 200
        # As `pulse api-key revoke` or another replica does: straight in the store.
        await ApiKeys(stack.engine).revoke(tenant.tenant_id, key.id)
        revoked_at = time.monotonic()
        assert (await _exchange(api, full)).status_code == 401

        async def status() -> int:
            return (await api.get(path, headers=_bearer(token))).status_code

        assert await stack.wait_for(status, 401, timeout_s=stack.settings.auth_cache_s + 5) == 401
        assert time.monotonic() - revoked_at <= stack.settings.auth_cache_s + 2


async def test_key_management_is_refused_to_viewers_and_to_api_keys(stack: Stack) -> None:
    tenant = await stack.tenant("KeyGuard")
    viewer_email = f"viewer-{tenant.tenant_id[:8]}@example.com"
    await stack.accounts.create_user(viewer_email, tenant.password, tenant.tenant_id, "viewer")
    key, full = await ApiKeys(stack.engine).create(
        tenant.tenant_id, "Everything", ["stats:read", "events:write", "sites:write"], created_by="u1"
    )
    async with httpx.AsyncClient(base_url=stack.dashboard, timeout=30) as api:
        viewer = await api.post("/api/v1/token", json={"email": viewer_email, "password": tenant.password})
        api_token = (await _exchange(api, full)).json()["token"]
        for token in (viewer.json()["token"], api_token):
            listed = await api.get("/api/v1/keys", headers=_bearer(token))
            made = await api.post(
                "/api/v1/keys", json={"name": "Sneaky", "permissions": ["stats:read"]}, headers=_bearer(token)
            )
            revoked = await api.delete(f"/api/v1/keys/{key.id}", headers=_bearer(token))
            assert [listed.status_code, made.status_code, revoked.status_code] == [403, 403, 403]
            assert "owner or admin" in listed.json()["error"]
            assert key.id not in listed.text
        assert (await api.get("/api/v1/keys")).status_code == 401
    assert [k.name for k in await ApiKeys(stack.engine).list(tenant.tenant_id)] == ["Everything"]
    assert (await ApiKeys(stack.engine).list(tenant.tenant_id))[0].revoked_at is None


async def test_permissions_are_carried_into_the_token(stack: Stack) -> None:
    tenant = await stack.tenant("KeyScopes")
    _, full = await ApiKeys(stack.engine).create(
        tenant.tenant_id, "Ingest", ["events:write"], created_by="u1"
    )
    async with httpx.AsyncClient(base_url=stack.dashboard, timeout=30) as api:
        answer = (await _exchange(api, full)).json()
    assert answer["permissions"] == ["events:write"]
    scope = await TokenService(stack.settings, stack.engine).verify(answer["token"])
    assert (scope.tenant_id, scope.permissions, scope.role) == (
        tenant.tenant_id,
        frozenset({"events:write"}),
        None,
    )


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"api_key": "pulse_x_y", "email": "a@example.com", "password": "p"}, "api_key"),
        ({"email": "a@example.com"}, "password"),
        ({"password": "secret"}, "email"),
        ({"apikey": "pulse_x_y"}, "apikey"),
        ({"api_key": 42}, "api_key"),
    ],
)
async def test_token_requests_with_bad_fields_are_answered_400_naming_the_field(
    stack: Stack, body: dict[str, object], field: str
) -> None:
    async with httpx.AsyncClient(base_url=stack.dashboard, timeout=30) as api:
        response = await api.post("/api/v1/token", json=body)
    assert response.status_code == 400
    assert field in response.text


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"name": "", "permissions": ["stats:read"]}, "name"),
        ({"name": "o\nk", "permissions": ["stats:read"]}, "name"),
        ({"name": "ok", "permissions": ["stats:write"]}, "permissions"),
        ({"name": "ok", "permissions": []}, "permissions"),
        ({"name": "ok"}, "permissions"),
        ({"name": "ok", "permissions": "stats:read"}, "permissions"),
    ],
)
async def test_creating_a_key_with_bad_fields_is_answered_400_naming_the_field(
    stack: Stack, body: dict[str, object], field: str
) -> None:
    tenant = await stack.tenant("KeyInput")
    owner = await stack.token(tenant)
    async with httpx.AsyncClient(base_url=stack.dashboard, timeout=30) as api:
        response = await api.post("/api/v1/keys", json=body, headers=_bearer(owner))
        assert (await api.get("/api/v1/keys", headers=_bearer(owner))).json() == {"keys": []}
    assert response.status_code == 400, response.text
    assert field in response.json()["error"] or field in str(response.json().get("details"))


async def test_an_unknown_key_is_refused(stack: Stack) -> None:
    async with httpx.AsyncClient(base_url=stack.dashboard, timeout=30) as api:
        for attempt in ("pulse_" + "0" * 32 + "_secret", "not a key", ""):
            response = await _exchange(api, attempt)
            assert response.status_code == 401, attempt
            assert response.json()["error"] == "unknown or revoked API key"


async def test_operators_make_list_and_revoke_keys_and_rotate_signing_keys(tmp_path: Path) -> None:
    # A process of its own: chDB opens one data path per process, and the suite's stack has one.
    assert run_pulse(tmp_path, "migrate").returncode == 0
    settings = load_settings({"PULSE_HOME": str(tmp_path)})
    engine = create_engine(settings.effective_database_url)
    try:
        tenant = await Accounts(engine).create_tenant("Cli")
        made = run_pulse(
            tmp_path,
            "api-key",
            "create",
            "--tenant",
            tenant.id,
            "--name",
            "Nightly",
            "--permissions",
            "stats:read",
        )
        assert made.returncode == 0, made.stderr
        full = made.stdout.strip()
        assert full.startswith("pulse_")
        assert "shown this once" in made.stderr
        key = await ApiKeys(engine).authenticate(full)
        assert key is not None
        assert (key.name, key.permissions, key.created_by) == ("Nightly", ("stats:read",), "operator")

        listed = run_pulse(tmp_path, "api-key", "list", "--tenant", tenant.id)
        assert key.id in listed.stdout
        assert "Nightly" in listed.stdout
        assert "active" in listed.stdout
        assert full.split("_", 2)[2] not in listed.stdout

        bad = run_pulse(
            tmp_path, "api-key", "create", "--tenant", tenant.id, "--name", "X", "--permissions", "root"
        )
        assert bad.returncode == 1
        assert "unknown permission 'root'" in bad.stderr
        nobody = run_pulse(tmp_path, "api-key", "list", "--tenant", "0" * 32)
        assert nobody.returncode == 1
        assert "unknown tenant" in nobody.stderr

        revoked = run_pulse(tmp_path, "api-key", "revoke", "--tenant", tenant.id, key.id)
        assert revoked.returncode == 0, revoked.stderr
        assert "revoked" in revoked.stdout
        assert await ApiKeys(engine).authenticate(full) is None
        missing = run_pulse(tmp_path, "api-key", "revoke", "--tenant", tenant.id, "f" * 32)
        assert missing.returncode == 1

        tokens = TokenService(settings, engine)
        before = await tokens.issue_api(
            (await ApiKeys(engine).create(tenant.id, "Live", ["stats:read"], created_by="u1"))[0]
        )
        rotated = run_pulse(tmp_path, "signing-key", "rotate")
        assert rotated.returncode == 0, rotated.stderr
        old_kid = jwt.get_unverified_header(before.token)["kid"]
        assert f"key {old_kid} verifies the tokens it signed until" in rotated.stdout
        new_kid = rotated.stdout.splitlines()[0].removeprefix("signing new tokens with key ")
        assert new_kid != old_kid
        after = await TokenService(settings, engine).issue_api(
            (await ApiKeys(engine).create(tenant.id, "Later", ["stats:read"], created_by="u1"))[0]
        )
        assert jwt.get_unverified_header(after.token)["kid"] == new_kid
        # The token signed before the rotation still verifies.
        assert (await TokenService(settings, engine).verify(before.token)).tenant_id == tenant.id
        with pytest.raises(InvalidToken):
            await TokenService(settings, engine).verify(before.token + "x")
    finally:
        await engine.dispose()
