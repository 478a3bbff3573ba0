"""Dashboard app factory: pages, the stats API and the live stream."""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

from litestar import Litestar, Request, Response
from litestar.config.csrf import CSRFConfig
from litestar.datastructures import State
from litestar.di import Provide
from litestar.exceptions import HTTPException
from litestar.openapi import OpenAPIConfig
from litestar.plugins.jinja import JinjaTemplateEngine
from litestar.response import Redirect, Template
from litestar.static_files import create_static_files_router
from litestar.template.config import TemplateConfig
from litestar.types import ASGIApp

from pulse.auth.api_rate_limit import ApiRateLimit
from pulse.auth.tokens import TokenService
from pulse.breaker import CircuitBreaker
from pulse.dashboard.api import StatsController
from pulse.dashboard.api_keys import KeysController, TokenController
from pulse.dashboard.goals_pages import GoalsPages
from pulse.dashboard.live import api_live_stream, live_stream
from pulse.dashboard.live_figures import LiveSource
from pulse.dashboard.manage_api import GoalsController, SitesController
from pulse.dashboard.openapi import openapi_json
from pulse.dashboard.overview_pages import OverviewPages
from pulse.dashboard.pages import AuthPages
from pulse.dashboard.query_api import QueryController, query_refused
from pulse.dashboard.rate_limit import ApiRateLimitMiddleware, LoginThrottle
from pulse.dashboard.realtime_pages import RealtimePages
from pulse.dashboard.security_headers import SecurityHeadersMiddleware
from pulse.dashboard.session import LoginRequired
from pulse.dashboard.share_pages import SharePages
from pulse.dashboard.share_unlock import ShareUnlock
from pulse.dashboard.share_view import ShareView
from pulse.dashboard.site_admin import SiteAdmin
from pulse.dashboard.site_pages import SitePages
from pulse.dashboard.sites import TenantSites
from pulse.dashboard.team_pages import InvitePages, TeamPages
from pulse.live.hub import TickHub
from pulse.live.reader import LiveReader
from pulse.oltp.accounts import Accounts
from pulse.oltp.api_keys import ApiKeys
from pulse.oltp.goals import Goals
from pulse.oltp.invitations import Invitations
from pulse.oltp.members import Members
from pulse.oltp.share_links import ShareLinks
from pulse.resources import Resources
from pulse.stats.errors import QueryError
from pulse.stats.prefold import Prefolder
from pulse.stats.query_service import StatsQueries
from pulse.stats.service import SiteNotFound, StatsService
from pulse.telemetry.http import http_metrics
from pulse.telemetry.routes import health_handler, metrics
from pulse.tenancy import Forbidden
from pulse.warehouse.client import is_embedded
from pulse.warehouse.reader import ScopedReader, WarehouseUnavailable


def _to_login(_: Request[None, None, State], __: LoginRequired) -> Redirect:
    return Redirect("/login", status_code=303)


def _site_not_found(_: Request[None, None, State], __: SiteNotFound) -> Response[dict[str, str]]:
    return Response({"error": "no such site"}, status_code=404)


def _forbidden(_: Request[None, None, State], exc: Forbidden) -> Response[dict[str, str]]:
    return Response({"error": str(exc), "missing_permission": exc.permission}, status_code=403)


def _warehouse_unavailable(
    request: Request[None, None, State], exc: WarehouseUnavailable
) -> Response[dict[str, object]] | Template:
    """The figures cannot be read; the events are safe in Kafka and will be counted when it is back."""
    retry = {"Retry-After": str(max(1, round(exc.retry_after_s)))}
    if request.url.path.startswith("/api/"):
        body: dict[str, object] = {"error": f"analytics store unavailable, retry later: {exc.reason}"}
        return Response(body, status_code=503, headers=retry)
    # htmx swaps only 2xx answers: a refreshing panel gets the error panel in its place.
    partial = request.headers.get("hx-request") == "true"
    return Template(
        "_unavailable.html" if partial else "unavailable.html",
        context={"reason": exc.reason},
        status_code=200 if partial else 503,
        headers=retry,
    )


def _http_error(request: Request[None, None, State], exc: HTTPException) -> Response[dict[str, object]]:
    body: dict[str, object] = {"error": exc.detail}
    if exc.extra:
        body["details"] = exc.extra
    return Response(body, status_code=exc.status_code, headers=exc.headers)


def create_dashboard_app(resources: Resources, stopping: asyncio.Event | None = None) -> ASGIApp:
    """`stopping` is the process's stop signal: live streams end when it is set."""
    settings = resources.settings
    accounts = Accounts(resources.engine)
    tenant_sites = TenantSites(accounts)
    open_s = settings.breaker_open_s
    reader = ScopedReader(
        resources.warehouse,
        resources.tenant_databases,
        CircuitBreaker("clickhouse", resources.metrics, open_s=open_s),
    )
    stats = StatsService(reader, tenant_sites)
    stats_queries = StatsQueries(reader, Goals(resources.engine), rollups=settings.stats_rollups)
    hub = TickHub(resources.redis, resources.metrics)
    tokens = TokenService(settings, resources.engine)
    redis_breaker = CircuitBreaker("redis", resources.metrics, open_s=open_s)
    live = LiveSource(LiveReader(resources.redis), reader, redis_breaker)
    api_rate_limit = ApiRateLimit(resources.redis, settings.api_rate_limit_per_min, redis_breaker)
    provided = {
        "accounts": accounts,
        "tenant_sites": tenant_sites,
        "site_admin": SiteAdmin(accounts, Goals(resources.engine)),
        "stats": stats,
        "stats_queries": stats_queries,
        "hub": hub,
        "tokens": tokens,
        "api_keys": ApiKeys(resources.engine),
        "login_throttle": LoginThrottle(settings),
        "live": live,
        "settings": settings,
        "metrics": resources.metrics,
        "members": Members(resources.engine),
        "invitations": Invitations(resources.engine),
        "share_links": ShareLinks(resources.engine),
        "share_unlock": ShareUnlock(settings.secret_key, settings.cookie_secure),
    }

    @asynccontextmanager
    async def lifespan(_: Litestar) -> AsyncIterator[None]:
        hub.start()
        ending = asyncio.create_task(_end_streams_on(stopping, hub)) if stopping is not None else None
        warehouse = resources.warehouse
        prefolder = Prefolder(
            stats_queries,
            accounts.enabled_sites,
            settings.prefold_days,
            settings.prefold_every_s,
            ready=lambda: warehouse.client.connected or not is_embedded(settings.effective_clickhouse_url),
        )
        folding = asyncio.create_task(prefolder.run()) if settings.prefold_days > 0 else None
        try:
            yield
        finally:
            for task in (ending, folding):
                if task is not None:
                    task.cancel()
            await hub.stop()

    csrf_secret = hashlib.sha256(f"csrf:{settings.secret_key}".encode()).hexdigest()
    app = Litestar(
        route_handlers=[
            AuthPages,
            SitePages,
            OverviewPages,
            RealtimePages,
            TeamPages,
            InvitePages,
            GoalsPages,
            SharePages,
            ShareView,
            live_stream,
            api_live_stream,
            TokenController,
            KeysController,
            StatsController,
            QueryController,
            openapi_json,
            SitesController,
            GoalsController,
            health_handler("dashboard", lambda: {"redis_ticks": hub.subscribed}),
            metrics,
            create_static_files_router(path="/static", directories=[settings.ui_dir / "static"]),
        ],
        dependencies={
            name: Provide(_constant(value), sync_to_thread=False) for name, value in provided.items()
        },
        template_config=TemplateConfig(directory=settings.ui_dir / "templates", engine=JinjaTemplateEngine),
        csrf_config=CSRFConfig(
            secret=csrf_secret,
            cookie_secure=settings.cookie_secure,
            cookie_samesite="strict",
            exclude=["/api/"],
        ),
        exception_handlers={
            LoginRequired: _to_login,
            SiteNotFound: _site_not_found,
            QueryError: query_refused,
            Forbidden: _forbidden,
            WarehouseUnavailable: _warehouse_unavailable,
            HTTPException: _http_error,
        },
        openapi_config=OpenAPIConfig(title="Pulse stats API", version="1", path="/api/schema"),
        lifespan=[lifespan],
        middleware=[SecurityHeadersMiddleware(), ApiRateLimitMiddleware(api_rate_limit, tokens)],
    )
    return http_metrics("dashboard", resources.metrics)(app) if settings.metrics_enabled else app


async def _end_streams_on(stopping: asyncio.Event, hub: TickHub) -> None:
    await stopping.wait()
    hub.end_streams()


def _constant[T](value: T) -> Callable[[], T]:
    def provide() -> T:
        return value

    return provide
