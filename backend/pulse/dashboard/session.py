"""Who is asking: a TenantScope from the session cookie (pages) or a bearer token (API)."""

from __future__ import annotations

from typing import Any

from litestar import Request
from litestar.connection import ASGIConnection
from litestar.datastructures import Cookie, State
from litestar.di import NamedDependency
from litestar.exceptions import NotAuthorizedException

from pulse.auth.tokens import InvalidToken, TokenService
from pulse.settings import Settings
from pulse.tenancy import TenantScope

SESSION_COOKIE = "pulse_session"


def session_cookie(token: str, settings: Settings) -> Cookie:
    """The signed-in browser's cookie: the user's JWT, out of reach of scripts and other sites' posts."""
    return Cookie(
        key=SESSION_COOKIE,
        value=token,
        httponly=True,
        samesite="lax",
        secure=settings.cookie_secure,
        max_age=settings.jwt_ttl_s,
        path="/",
    )


class LoginRequired(Exception):
    """A page was asked for without a valid session; the browser is sent to the login form."""


def presented_token(connection: ASGIConnection[Any, Any, Any, Any]) -> str | None:
    """The bearer token, else the session cookie (the dashboard's own pages call the API with it)."""
    header = connection.headers.get("authorization", "")
    if header.lower().startswith("bearer "):
        return header[7:].strip()
    return connection.cookies.get(SESSION_COOKIE)


async def page_scope(
    request: Request[None, None, State], tokens: NamedDependency[TokenService]
) -> TenantScope:
    token = request.cookies.get(SESSION_COOKIE)
    if not token:
        raise LoginRequired
    try:
        return await tokens.verify(token)
    except InvalidToken as exc:
        raise LoginRequired from exc


async def api_scope(
    request: Request[None, None, State], tokens: NamedDependency[TokenService]
) -> TenantScope:
    # The rate limit (pulse.dashboard.rate_limit) may have verified this request's token already.
    verified = request.scope.get("auth")
    if isinstance(verified, TenantScope):
        return verified
    if isinstance(verified, InvalidToken):
        raise _refused(verified)
    token = presented_token(request)
    if not token:
        raise NotAuthorizedException("a bearer token is required", headers={"WWW-Authenticate": "Bearer"})
    try:
        return await tokens.verify(token)
    except InvalidToken as exc:
        raise _refused(exc) from exc


def _refused(exc: InvalidToken) -> NotAuthorizedException:
    return NotAuthorizedException(
        f"invalid token: {exc}", headers={"WWW-Authenticate": 'Bearer error="invalid_token"'}
    )
