"""Who is asking: a TenantScope from the session cookie (pages) or a bearer token (API)."""

from __future__ import annotations

from litestar import Request
from litestar.datastructures import State
from litestar.di import NamedDependency
from litestar.exceptions import NotAuthorizedException

from pulse.auth.tokens import InvalidToken, TokenService
from pulse.tenancy import TenantScope

SESSION_COOKIE = "pulse_session"


class LoginRequired(Exception):
    """A page was asked for without a valid session; the browser is sent to the login form."""


def _token(request: Request[None, None, State]) -> str | None:
    header = request.headers.get("authorization", "")
    if header.lower().startswith("bearer "):
        return header[7:].strip()
    return request.cookies.get(SESSION_COOKIE)


def page_scope(request: Request[None, None, State], tokens: NamedDependency[TokenService]) -> TenantScope:
    token = request.cookies.get(SESSION_COOKIE)
    if not token:
        raise LoginRequired
    try:
        return tokens.verify(token)
    except InvalidToken as exc:
        raise LoginRequired from exc


def api_scope(request: Request[None, None, State], tokens: NamedDependency[TokenService]) -> TenantScope:
    token = _token(request)
    if not token:
        raise NotAuthorizedException("a bearer token is required")
    try:
        return tokens.verify(token)
    except InvalidToken as exc:
        raise NotAuthorizedException(f"invalid token: {exc}") from exc
