"""Every way a bearer token is refused: 401, the reason in the body, and no data.

Each case starts from a genuine token of the session's stack and changes one thing, signing
the result with the real key material (derived from the secret and the kid, as the service
does) wherever the case is about something other than the signature.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import time
import uuid
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import jwt
import msgspec
import pytest
from sqlalchemy import text

from pulse.auth.keyring import key_material
from pulse.oltp.api_keys import ApiKeys
from pulse.oltp.db import create_engine
from stack import Stack, Tenant

Claims = dict[str, Any]


class Genuine(msgspec.Struct):
    tenant: Tenant
    token: str
    claims: Claims
    kid: str
    secret_key: str
    # A kid in the ring whose retire time has passed.
    retired_kid: str
    # A token of an API key revoked since it was issued.
    revoked_key_token: str

    def key(self, kid: str | None = None) -> bytes:
        return key_material(self.secret_key, kid or self.kid)

    def sign(self, claims: Claims, kid: str | None = None) -> str:
        kid = kid or self.kid
        return jwt.encode(claims, self.key(kid), algorithm="HS256", headers={"kid": kid})

    def with_claims(self, **changes: Any) -> str:
        return self.sign({**self.claims, **changes})

    def without(self, claim: str) -> str:
        return self.sign({name: value for name, value in self.claims.items() if name != claim})


@pytest.fixture(scope="module")
async def genuine(stack: Stack) -> AsyncIterator[Genuine]:
    tenant = await stack.tenant("JwtRejection")
    token = await stack.token(tenant)
    engine = create_engine(stack.settings.effective_database_url)
    try:
        retired_kid = secrets.token_hex(8)
        now_ms = int(time.time() * 1000)
        async with engine.begin() as conn:
            await conn.execute(
                text(
                    "INSERT INTO signing_keys (kid, created_at, retire_at) VALUES (:kid, :created, :retire)"
                ),
                {"kid": retired_kid, "created": now_ms - 10_000_000, "retire": now_ms - 1000},
            )
        keys = ApiKeys(engine)
        key, full = await keys.create(tenant.tenant_id, "Soon revoked", ["stats:read"], created_by="test")
        async with httpx.AsyncClient(base_url=stack.dashboard, timeout=30) as api:
            revoked_key_token = (await api.post("/api/v1/token", json={"api_key": full})).json()["token"]
        await keys.revoke(tenant.tenant_id, key.id)
        yield Genuine(
            tenant=tenant,
            token=token,
            claims=jwt.decode(token, options={"verify_signature": False}),
            kid=jwt.get_unverified_header(token)["kid"],
            secret_key=stack.settings.secret_key,
            retired_kid=retired_kid,
            revoked_key_token=revoked_key_token,
        )
    finally:
        await engine.dispose()


def _b64(data: bytes) -> bytes:
    return base64.urlsafe_b64encode(data).rstrip(b"=")


def _hand_made(header: Claims, claims: Claims, key: bytes) -> str:
    """A token PyJWT would not make: another algorithm in the header, HMAC-signed with our key."""
    signing_input = _b64(json.dumps(header).encode()) + b"." + _b64(json.dumps(claims).encode())
    signature = hmac.new(key, signing_input, hashlib.sha256).digest()
    return (signing_input + b"." + _b64(signature)).decode()


def _tampered(g: Genuine) -> str:
    header, _, signature = g.token.split(".")
    payload = _b64(json.dumps({**g.claims, "perms": ["stats:read", "sites:write"], "role": "owner"}).encode())
    return f"{header}.{payload.decode()}.{signature}"


def _now() -> int:
    return int(time.time())


CASES: list[tuple[str, Callable[[Genuine], str], str]] = [
    ("garbage", lambda g: "not-a-jwt", "not a well-formed JWT"),
    ("three-junk-segments", lambda g: "a.b.c", "not a well-formed JWT"),
    ("truncated", lambda g: g.token.rsplit(".", 1)[0], "not a well-formed JWT"),
    ("alg-none", lambda g: jwt.encode(g.claims, None, algorithm="none", headers={"kid": g.kid}), "'none'"),
    ("alg-none-upper", lambda g: _hand_made({"alg": "NONE", "kid": g.kid}, g.claims, g.key()), "'NONE'"),
    ("alg-missing", lambda g: _hand_made({"kid": g.kid}, g.claims, g.key()), "algorithm None"),
    (
        "hs512",
        lambda g: jwt.encode(g.claims, g.key() * 2, algorithm="HS512", headers={"kid": g.kid}),
        "'HS512' is not accepted",
    ),
    (
        "hs384",
        lambda g: jwt.encode(g.claims, g.key() * 2, algorithm="HS384", headers={"kid": g.kid}),
        "'HS384' is not accepted",
    ),
    (
        "rs256",
        lambda g: _hand_made({"alg": "RS256", "kid": g.kid}, g.claims, g.key()),
        "'RS256' is not accepted",
    ),
    (
        "es256",
        lambda g: _hand_made({"alg": "ES256", "kid": g.kid}, g.claims, g.key()),
        "'ES256' is not accepted",
    ),
    (
        "wrong-key",
        lambda g: jwt.encode(g.claims, b"k" * 32, algorithm="HS256", headers={"kid": g.kid}),
        "signature does not verify",
    ),
    (
        "old-style-key",
        lambda g: jwt.encode(
            g.claims,
            hashlib.sha256(f"jwt:{g.secret_key}".encode()).digest(),
            algorithm="HS256",
            headers={"kid": g.kid},
        ),
        "signature does not verify",
    ),
    ("tampered-payload", _tampered, "signature does not verify"),
    ("kid-missing", lambda g: jwt.encode(g.claims, g.key(), algorithm="HS256"), "names no signing key"),
    (
        "kid-empty",
        lambda g: jwt.encode(g.claims, g.key(), algorithm="HS256", headers={"kid": ""}),
        "no signing key",
    ),
    ("kid-unknown", lambda g: g.sign(g.claims, kid="0123456789abcdef"), "unknown key"),
    ("kid-not-ours", lambda g: g.sign(g.claims, kid="../../etc/passwd"), "unknown key"),
    ("kid-retired", lambda g: g.sign(g.claims, kid=g.retired_kid), "retired key"),
    ("expired", lambda g: g.with_claims(exp=_now() - 60), "token has expired"),
    ("not-yet-valid", lambda g: g.with_claims(nbf=_now() + 600), "not valid yet"),
    ("issued-in-the-future", lambda g: g.with_claims(iat=_now() + 600, nbf=_now()), "issued in the future"),
    ("exp-not-a-number", lambda g: g.with_claims(exp="tomorrow"), "'exp' claim is not a number"),
    ("wrong-audience", lambda g: g.with_claims(aud="someone-else"), "not meant for this audience"),
    ("wrong-issuer", lambda g: g.with_claims(iss="evil"), "not issued by 'pulse'"),
    *[
        (f"missing-{claim}", lambda g, claim=claim: g.without(claim), f"lacks the '{claim}' claim")
        for claim in ("kind", "tid", "sub", "perms", "iat", "nbf", "exp", "iss", "aud")
    ],
    ("missing-role", lambda g: g.without("role"), "'role' claim"),
    ("unknown-role", lambda g: g.with_claims(role="superuser"), "'role' claim"),
    ("unknown-kind", lambda g: g.with_claims(kind="service"), "'kind' claim"),
    ("unknown-permission", lambda g: g.with_claims(perms=["stats:read", "root"]), "'perms' claim"),
    ("tenant-unknown", lambda g: g.with_claims(tid=uuid.uuid4().hex), "tenant no longer exists"),
    (
        "api-key-unknown",
        lambda g: g.with_claims(kind="api_key", sub=uuid.uuid4().hex, role=None),
        "API key no longer exists",
    ),
    ("api-key-revoked", lambda g: g.revoked_key_token, "API key is revoked"),
]


@pytest.mark.parametrize(("make", "reason"), [pytest.param(m, r, id=i) for i, m, r in CASES])
async def test_a_bad_token_is_refused_with_its_reason(
    stack: Stack, genuine: Genuine, make: Callable[[Genuine], str], reason: str
) -> None:
    token = make(genuine)
    async with httpx.AsyncClient(base_url=stack.dashboard, timeout=30) as api:
        response = await api.get(
            f"/api/v1/sites/{genuine.tenant.site.id}/aggregate", headers={"authorization": f"Bearer {token}"}
        )
    assert response.status_code == 401, response.text
    assert reason in response.json()["error"]
    assert response.headers["www-authenticate"].startswith("Bearer")
    assert "visitors" not in response.text
    assert "X-RateLimit-Remaining" not in response.headers


async def test_the_genuine_token_is_accepted(stack: Stack, genuine: Genuine) -> None:
    """The cases above differ from this one only in what they change."""
    async with httpx.AsyncClient(base_url=stack.dashboard, timeout=30) as api:
        for token in (genuine.token, genuine.with_claims()):
            response = await api.get(
                f"/api/v1/sites/{genuine.tenant.site.id}/aggregate",
                headers={"authorization": f"Bearer {token}"},
            )
            assert response.status_code == 200, response.text
            assert "visitors" in response.json()


async def test_a_deleted_tenants_token_is_refused(stack: Stack) -> None:
    tenant = await stack.tenant("SoonDeleted")
    token = await stack.token(tenant)
    engine = create_engine(stack.settings.effective_database_url)
    try:
        async with engine.begin() as conn:
            for table in ("memberships", "sites", "tenants"):
                column = "id" if table == "tenants" else "tenant_id"
                # Table and column names are the literals above.
                await conn.execute(
                    text(f"DELETE FROM {table} WHERE {column} = :tenant"),  # noqa: S608
                    {"tenant": tenant.tenant_id},
                )
    finally:
        await engine.dispose()
    async with httpx.AsyncClient(base_url=stack.dashboard, timeout=30) as api:
        response = await api.get(
            f"/api/v1/sites/{tenant.site.id}/aggregate", headers={"authorization": f"Bearer {token}"}
        )
    assert response.status_code == 401
    assert response.json()["error"] == "invalid token: token's tenant no longer exists"


async def test_a_session_cookie_with_a_bad_token_goes_back_to_the_login_page(
    stack: Stack, genuine: Genuine
) -> None:
    async with httpx.AsyncClient(base_url=stack.dashboard, timeout=30) as browser:
        for token in (
            genuine.with_claims(exp=_now() - 60),
            genuine.sign(genuine.claims, kid=genuine.retired_kid),
        ):
            browser.cookies.set("pulse_session", token)
            page = await browser.get(f"/sites/{genuine.tenant.site.id}")
            assert page.status_code == 303
            assert page.headers["location"] == "/login"
