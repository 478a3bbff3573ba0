"""Session and API tokens: JWTs (PyJWT) whose claims name the tenant and the role.

One algorithm is accepted, so a token cannot pick its own (alg=none, or an asymmetric
key used as an HMAC secret); issuer, audience and expiry are always checked.
"""

from __future__ import annotations

import hashlib
import time
from typing import cast, get_args

import jwt

from pulse.settings import Settings
from pulse.tenancy import Role, TenantScope

ALGORITHM = "HS256"


class InvalidToken(Exception):
    pass


class TokenService:
    def __init__(self, settings: Settings) -> None:
        # A key of its own, so the JWT key is not the raw secret used elsewhere.
        self._key = hashlib.sha256(f"jwt:{settings.secret_key}".encode()).digest()
        self._ttl_s = settings.jwt_ttl_s
        self._issuer = settings.jwt_issuer
        self._audience = settings.jwt_audience

    def issue(self, subject: str, tenant_id: str, role: Role) -> str:
        now = int(time.time())
        claims = {
            "sub": subject,
            "tid": tenant_id,
            "role": role,
            "iat": now,
            "nbf": now,
            "exp": now + self._ttl_s,
            "iss": self._issuer,
            "aud": self._audience,
        }
        return jwt.encode(claims, self._key, algorithm=ALGORITHM)

    def verify(self, token: str) -> TenantScope:
        try:
            claims = jwt.decode(
                token,
                self._key,
                algorithms=[ALGORITHM],
                audience=self._audience,
                issuer=self._issuer,
                options={"require": ["exp", "iat", "sub", "iss", "aud"]},
            )
        except jwt.PyJWTError as exc:
            raise InvalidToken(str(exc)) from exc
        tenant_id, role = claims.get("tid"), claims.get("role")
        if not isinstance(tenant_id, str) or role not in get_args(Role):
            raise InvalidToken("token does not name a tenant and a role")
        return TenantScope.of_user(tenant_id, str(claims["sub"]), cast(Role, role))
