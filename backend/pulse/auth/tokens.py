"""Bearer tokens: JWTs (PyJWT) naming the tenant, the subject and its permissions.

A signed-in user gets one for the session; an API key is exchanged for a short-lived one. Only
HS256 is accepted, whatever the header asks (alg=none, another HMAC, or a public key passed off
as an HMAC secret), and the kid must name a key of the ring (pulse.auth.keyring) that is not
retired. Issuer, audience, expiry, not-before and issue time are always checked, and the tenant,
and for an API key the key, must still exist; a user must still be a member of the tenant, and gets
the permissions of their role as it is now. What was read about them is believed for
`auth_cache_s`, so a revoked key's tokens, and a removed or demoted member's, lose their access
everywhere within that time.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, Literal, cast, get_args

import jwt
import msgspec
from sqlalchemy.ext.asyncio import AsyncEngine

from pulse.auth.keyring import CLOCK_LEEWAY_S, Keyring
from pulse.auth.ttl_cache import TtlCache
from pulse.oltp.accounts import Accounts, Membership
from pulse.oltp.api_keys import ApiKey, ApiKeys
from pulse.oltp.members import Members
from pulse.settings import Settings
from pulse.tenancy import KEY_PERMISSIONS, PERMISSIONS, ROLE_PERMISSIONS, Permission, Role, TenantScope

ALGORITHM = "HS256"
Kind = Literal["user", "api_key"]
KINDS: tuple[Kind, ...] = get_args(Kind)
ROLES: tuple[Role, ...] = get_args(Role)
_REQUIRED = ("kind", "tid", "sub", "perms", "iat", "nbf", "exp", "iss", "aud")


class InvalidToken(Exception):
    """The token is refused; the message says why and is safe to show its holder."""


class Issued(msgspec.Struct, frozen=True):
    token: str
    expires_in: int


class TokenService:
    def __init__(
        self, settings: Settings, engine: AsyncEngine, clock: Callable[[], float] = time.time
    ) -> None:
        self._keyring = Keyring(engine, settings, clock)
        self._user_ttl_s = settings.jwt_ttl_s
        self._api_ttl_s = settings.api_token_ttl_s
        self._issuer = settings.jwt_issuer
        self._audience = settings.jwt_audience
        self._clock = clock
        self._accounts = Accounts(engine)
        self._api_keys = ApiKeys(engine, clock)
        self._members = Members(engine)
        self._tenants: TtlCache[str, bool] = TtlCache(settings.auth_cache_s, clock)
        self._keys: TtlCache[str, ApiKey | None] = TtlCache(settings.auth_cache_s, clock)
        self._roles: TtlCache[tuple[str, str], Role | None] = TtlCache(settings.auth_cache_s, clock)

    async def issue_user(self, member: Membership) -> Issued:
        permissions = ROLE_PERMISSIONS[member.role]
        claims = {"kind": "user", "sub": member.user_id, "role": member.role}
        return await self._issue(member.tenant_id, permissions, claims, self._user_ttl_s)

    async def issue_api(self, key: ApiKey) -> Issued:
        if key.revoked_at is not None:
            raise ValueError(f"API key {key.id} is revoked")
        claims = {"kind": "api_key", "sub": key.id}
        return await self._issue(key.tenant_id, frozenset(key.permissions), claims, self._api_ttl_s)

    async def _issue(
        self, tenant_id: str, permissions: frozenset[Permission], claims: dict[str, str], ttl_s: int
    ) -> Issued:
        key = await self._keyring.signing_key()
        now = int(self._clock())
        payload = claims | {
            "tid": tenant_id,
            "perms": [p for p in PERMISSIONS if p in permissions],
            "iat": now,
            "nbf": now,
            "exp": now + ttl_s,
            "iss": self._issuer,
            "aud": self._audience,
        }
        token = jwt.encode(
            payload, self._keyring.material(key.kid), algorithm=ALGORITHM, headers={"kid": key.kid}
        )
        return Issued(token=token, expires_in=ttl_s)

    def forget_api_key(self, key_id: str) -> None:
        """This process refuses a key's tokens at once (it revoked the key); others within auth_cache_s."""
        self._keys.forget(key_id)

    def forget_member(self, tenant_id: str, user_id: str) -> None:
        """This process applies a member's new role or removal at once; others within auth_cache_s."""
        self._roles.forget((tenant_id, user_id))

    async def verify(self, token: str) -> TenantScope:
        kid = _kid(token)
        claims = self._decode(token, kid)
        key = await self._keyring.find(kid)
        if key is None:
            raise InvalidToken("token is signed with an unknown key")
        now = self._clock()
        if not key.verifies_at(int(now * 1000)):
            raise InvalidToken("token is signed with a retired key")
        _check_times(claims, now)
        kind, scope = _scope(claims)
        if not await self._tenants.get(scope.tenant_id, lambda: self._tenant_exists(scope.tenant_id)):
            raise InvalidToken("token's tenant no longer exists")
        if kind == "api_key":
            await self._check_api_key(scope)
            return scope
        return await self._current_member(scope)

    def _decode(self, token: str, kid: str) -> dict[str, Any]:
        try:
            return jwt.decode(
                token,
                self._keyring.material(kid),
                algorithms=[ALGORITHM],
                audience=self._audience,
                issuer=self._issuer,
                # Times are checked against this service's clock (_check_times), which tests move.
                options={
                    "require": list(_REQUIRED),
                    "verify_exp": False,
                    "verify_nbf": False,
                    "verify_iat": False,
                },
            )
        except jwt.InvalidSignatureError as exc:
            raise InvalidToken("token signature does not verify") from exc
        except jwt.MissingRequiredClaimError as exc:
            raise InvalidToken(f"token lacks the {exc.claim!r} claim") from exc
        except jwt.InvalidAudienceError as exc:
            raise InvalidToken(f"token is not meant for this audience ({self._audience!r})") from exc
        except jwt.InvalidIssuerError as exc:
            raise InvalidToken(f"token is not issued by {self._issuer!r}") from exc
        except jwt.PyJWTError as exc:
            raise InvalidToken(f"token is not a valid JWT: {exc}") from exc

    async def _tenant_exists(self, tenant_id: str) -> bool:
        return await self._accounts.get_tenant(tenant_id) is not None

    async def _current_member(self, scope: TenantScope) -> TenantScope:
        tenant_id, user_id = scope.tenant_id, scope.subject
        role = await self._roles.get((tenant_id, user_id), lambda: self._members.role_of(tenant_id, user_id))
        if role is None:
            raise InvalidToken("token's user is no longer a member of the tenant")
        # The membership is the authority: a demotion takes effect without a new login, and so does a
        # promotion.
        return scope if role == scope.role else TenantScope.of_user(tenant_id, user_id, role)

    async def _check_api_key(self, scope: TenantScope) -> None:
        key = await self._keys.get(scope.subject, lambda: self._api_keys.find(scope.subject))
        if key is None or key.tenant_id != scope.tenant_id:
            raise InvalidToken("token's API key no longer exists")
        if key.revoked_at is not None:
            raise InvalidToken("token's API key is revoked")
        await self._api_keys.touch(key.id)


def _kid(token: str) -> str:
    """The header's kid, once the header is well-formed and asks for the one accepted algorithm."""
    try:
        header = jwt.get_unverified_header(token)
    except jwt.PyJWTError as exc:
        raise InvalidToken(f"token is not a well-formed JWT: {exc}") from exc
    algorithm = header.get("alg")
    if algorithm != ALGORITHM:
        raise InvalidToken(f"token algorithm {algorithm!r} is not accepted, only {ALGORITHM}")
    kid = header.get("kid")
    if not isinstance(kid, str) or not kid:
        raise InvalidToken("token header names no signing key (kid)")
    return kid


def _check_times(claims: dict[str, Any], now: float) -> None:
    # Replicas' clocks may disagree a little: a token fresh from one is not "from the future" on another.
    times: dict[str, float] = {}
    for name in ("exp", "nbf", "iat"):
        value = claims[name]
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise InvalidToken(f"token's {name!r} claim is not a number")
        times[name] = value
    if now >= times["exp"] + CLOCK_LEEWAY_S:
        raise InvalidToken("token has expired")
    if times["nbf"] > now + CLOCK_LEEWAY_S:
        raise InvalidToken("token is not valid yet (nbf)")
    if times["iat"] > now + CLOCK_LEEWAY_S:
        raise InvalidToken("token is issued in the future (iat)")


def _scope(claims: dict[str, Any]) -> tuple[Kind, TenantScope]:
    kind, tenant_id, subject, perms = claims["kind"], claims["tid"], claims["sub"], claims["perms"]
    if kind not in KINDS:
        raise InvalidToken(f"token's 'kind' claim must be one of {', '.join(KINDS)}")
    if not isinstance(tenant_id, str) or not isinstance(subject, str):
        raise InvalidToken("token's 'tid' and 'sub' claims must be strings")
    if not isinstance(perms, list) or not all(p in PERMISSIONS for p in perms):
        raise InvalidToken(f"token's 'perms' claim must list some of {', '.join(PERMISSIONS)}")
    permissions = frozenset(cast(list[Permission], perms))
    if kind == "api_key":
        # A key never holds more than keys may, whatever its token says.
        key_permissions = permissions & frozenset(KEY_PERMISSIONS)
        return kind, TenantScope(tenant_id=tenant_id, subject=subject, permissions=key_permissions)
    role = claims.get("role")
    if role not in ROLES:
        raise InvalidToken(f"token's 'role' claim must be one of {', '.join(ROLES)}")
    user = TenantScope.of_user(tenant_id, subject, cast(Role, role))
    # Never more than the role allows today, even if a role lost a permission since the token was made.
    return kind, msgspec.structs.replace(user, permissions=permissions & user.permissions)
