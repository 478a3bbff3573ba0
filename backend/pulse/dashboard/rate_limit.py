"""Rate limits on the dashboard: per caller on the API, per client IP on logins and token requests.

API callers are counted by the verified token's tenant and subject (an API key or a user), never
by anything a caller could forge into another's count. Requests without a valid token are passed
on uncounted: the route answers them 401 at once.
"""

from __future__ import annotations

from typing import Any

import msgspec
from litestar.connection import ASGIConnection
from litestar.datastructures import MutableScopeHeaders
from litestar.enums import ScopeType
from litestar.middleware import ASGIMiddleware
from litestar.response.base import ASGIResponse
from litestar.types import ASGIApp, Message, Receive, Scope, Send

from pulse.auth.api_rate_limit import ApiRateLimit, Decision
from pulse.auth.tokens import InvalidToken, TokenService
from pulse.collector.limits import RateLimiter, retry_after_s
from pulse.collector.privacy import TrustedProxies, client_ip
from pulse.dashboard.session import presented_token
from pulse.settings import Settings


class ApiRateLimitMiddleware(ASGIMiddleware):
    scopes = (ScopeType.HTTP,)

    def __init__(self, limit: ApiRateLimit, tokens: TokenService) -> None:
        self._limit = limit
        self._tokens = tokens

    async def handle(self, scope: Scope, receive: Receive, send: Send, next_app: ASGIApp) -> None:
        token = presented_token(ASGIConnection(scope)) if scope["path"].startswith("/api/") else None
        if token is None or not self._limit.enabled:
            await next_app(scope, receive, send)
            return
        try:
            verified = await self._tokens.verify(token)
        except InvalidToken as exc:
            # pulse.dashboard.session.api_scope answers with the reason, without verifying again.
            scope["auth"] = exc
            await next_app(scope, receive, send)
            return
        scope["auth"] = verified
        decision = await self._limit.take(f"{verified.tenant_id}:{verified.subject}")
        headers = _headers(decision)
        if not decision.admitted:
            body = {
                "error": f"rate limit of {decision.limit} requests per minute exceeded, "
                f"retry in {decision.retry_after_s} s"
            }
            refused = ASGIResponse(
                body=msgspec.json.encode(body),
                status_code=429,
                media_type="application/json",
                headers=headers | {"Retry-After": str(decision.retry_after_s)},
            )
            await refused(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                MutableScopeHeaders.from_message(message).update(headers)
            await send(message)

        await next_app(scope, receive, send_with_headers)


def _headers(decision: Decision) -> dict[str, str]:
    return {"X-RateLimit-Limit": str(decision.limit), "X-RateLimit-Remaining": str(decision.remaining)}


class LoginThrottle:
    """Per client IP and per replica: enough to make password guessing slow, with no shared state."""

    def __init__(self, settings: Settings) -> None:
        per_min = settings.login_rate_limit_per_min
        self._limiter = RateLimiter(per_min / 60, per_min)
        self._proxies = TrustedProxies(settings.trusted_proxies)

    def wait_s(self, connection: ASGIConnection[Any, Any, Any, Any]) -> int:
        """0 when this attempt may go ahead; otherwise the seconds before the next one may."""
        peer = connection.client.host if connection.client else None
        ip = client_ip(peer, connection.headers.get("x-forwarded-for"), self._proxies)
        wait = self._limiter.take(ip)
        return retry_after_s(wait) if wait > 0 else 0
