"""Bearer tokens for a login or an API key, and the management of a tenant's API keys."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated

import msgspec
from litestar import Controller, Request, delete, get, post
from litestar.datastructures import State
from litestar.di import NamedDependency, Provide
from litestar.exceptions import (
    NotAuthorizedException,
    NotFoundException,
    PermissionDeniedException,
    TooManyRequestsException,
    ValidationException,
)
from litestar.params import FromPath, JSONBody

from pulse.auth.tokens import Issued, TokenService
from pulse.dashboard.rate_limit import LoginThrottle
from pulse.dashboard.session import api_scope
from pulse.oltp.accounts import Accounts
from pulse.oltp.api_keys import MAX_KEY_LENGTH, ApiKey, ApiKeys, checked_name, checked_permissions
from pulse.tenancy import PERMISSIONS, Permission, TenantScope

KEY_MANAGERS = ("owner", "admin")


class TokenRequest(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """Either an API key, or a user's email and password."""

    api_key: Annotated[str, msgspec.Meta(max_length=MAX_KEY_LENGTH)] | None = None
    email: Annotated[str, msgspec.Meta(max_length=254)] | None = None
    password: Annotated[str, msgspec.Meta(max_length=1024)] | None = None


class TokenResponse(msgspec.Struct, frozen=True):
    token: str
    token_type: str
    expires_in: int
    tenant_id: str
    permissions: tuple[Permission, ...]
    # The user's role; None for an API key's token.
    role: str | None = None


class NewKey(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    name: Annotated[str, msgspec.Meta(max_length=1000)]
    permissions: Annotated[list[str], msgspec.Meta(max_length=10)]


class KeyList(msgspec.Struct, frozen=True):
    keys: list[ApiKey]


class CreatedKey(msgspec.Struct, frozen=True):
    key: ApiKey
    # The whole key, shown this once: only a hash of it is kept.
    secret: str


class TokenController(Controller):
    path = "/api/v1/token"

    @post("/", summary="Exchange an API key, or a login, for a short-lived bearer token", status_code=200)
    async def token(
        self,
        request: Request[None, None, State],
        data: JSONBody[TokenRequest],
        accounts: NamedDependency[Accounts],
        api_keys: NamedDependency[ApiKeys],
        tokens: NamedDependency[TokenService],
        login_throttle: NamedDependency[LoginThrottle],
    ) -> TokenResponse:
        wait = login_throttle.wait_s(request)
        if wait:
            raise TooManyRequestsException(
                f"too many token requests from this address, retry in {wait} s",
                headers={"Retry-After": str(wait)},
            )
        if data.api_key is not None:
            if data.email is not None or data.password is not None:
                raise _invalid("api_key", "give either api_key, or email and password, not both")
            key = await api_keys.authenticate(data.api_key)
            if key is None:
                raise NotAuthorizedException("unknown or revoked API key")
            return _response(await tokens.issue_api(key), key.tenant_id, key.permissions)
        for field, value in (("email", data.email), ("password", data.password)):
            if value is None:
                raise _invalid(field, f"{field} is required (or give an api_key instead)")
        member = await accounts.authenticate(data.email or "", data.password or "")
        if member is None:
            raise NotAuthorizedException("wrong email or password")
        issued = await tokens.issue_user(member)
        scope = TenantScope.of_user(member.tenant_id, member.user_id, member.role)
        permissions = tuple(p for p in PERMISSIONS if p in scope.permissions)
        return _response(issued, member.tenant_id, permissions, member.role)


class KeysController(Controller):
    """Only a signed-in owner or admin manages keys: an API key cannot make or revoke keys."""

    path = "/api/v1/keys"
    dependencies = {"tenant": Provide(api_scope)}

    @get("/", summary="The tenant's API keys, revoked ones included (never their secrets)")
    async def list_keys(
        self, tenant: NamedDependency[TenantScope], api_keys: NamedDependency[ApiKeys]
    ) -> KeyList:
        _require_manager(tenant)
        return KeyList(keys=await api_keys.list(tenant.tenant_id))

    @post("/", summary="Create an API key; its secret is in this answer only", status_code=201)
    async def create_key(
        self, data: JSONBody[NewKey], tenant: NamedDependency[TenantScope], api_keys: NamedDependency[ApiKeys]
    ) -> CreatedKey:
        _require_manager(tenant)
        name = _checked("name", checked_name, data.name)
        permissions = _checked("permissions", checked_permissions, data.permissions)
        key, secret = await api_keys.create(tenant.tenant_id, name, permissions, created_by=tenant.subject)
        return CreatedKey(key=key, secret=secret)

    @delete("/{key_id:str}", summary="Revoke an API key: its tokens stop working within seconds")
    async def revoke_key(
        self,
        key_id: FromPath[str],
        tenant: NamedDependency[TenantScope],
        api_keys: NamedDependency[ApiKeys],
        tokens: NamedDependency[TokenService],
    ) -> None:
        _require_manager(tenant)
        if await api_keys.revoke(tenant.tenant_id, key_id) is None:
            raise NotFoundException("no such API key")
        tokens.forget_api_key(key_id)


def _require_manager(tenant: TenantScope) -> None:
    if tenant.role not in KEY_MANAGERS:
        raise PermissionDeniedException("managing API keys needs a signed-in owner or admin, not an API key")


def _checked[V, T](field: str, check: Callable[[V], T], value: V) -> T:
    try:
        return check(value)
    except ValueError as exc:
        raise _invalid(field, str(exc)) from exc


def _invalid(field: str, message: str) -> ValidationException:
    return ValidationException(
        f"{field}: {message}", extra=[{"key": field, "message": message, "source": "body"}]
    )


def _response(
    issued: Issued, tenant_id: str, permissions: tuple[Permission, ...], role: str | None = None
) -> TokenResponse:
    return TokenResponse(
        token=issued.token,
        token_type="Bearer",  # noqa: S106 - the OAuth token type, not a secret
        expires_in=issued.expires_in,
        tenant_id=tenant_id,
        permissions=permissions,
        role=role,
    )
