"""Collector app factory: beacons in, acknowledged Kafka writes out."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

from litestar import Litestar, Request, Response
from litestar.config.cors import CORSConfig
from litestar.datastructures import State
from litestar.di import Provide
from litestar.exceptions import HTTPException
from litestar.openapi import OpenAPIConfig
from litestar.openapi.spec import Components, SecurityScheme
from litestar.status_codes import HTTP_413_REQUEST_ENTITY_TOO_LARGE
from litestar.types import ASGIApp

from pulse.auth.tokens import TokenService
from pulse.collector.ingest import Ingest, Rejection, edge_for
from pulse.collector.routes import event_routes, pinned_tracker_script, tracker_script
from pulse.collector.server_api import ServerEventsApi, server_event_routes
from pulse.collector.site_source import AccountsSiteSource
from pulse.collector.sites import SiteDirectory
from pulse.collector.tracker import TrackerScript
from pulse.kafka.publisher import BrokerUnavailable, EventPublisher
from pulse.oltp.accounts import Accounts
from pulse.oltp.db import create_engine
from pulse.settings import Settings
from pulse.telemetry.http import http_metrics
from pulse.telemetry.metrics import Metrics, process_metrics
from pulse.telemetry.routes import health_handler, metrics
from pulse.telemetry.tracing import Tracing
from pulse.tenancy import Forbidden


def _rejected(_: Request[None, None, State], exc: Rejection) -> Response[dict[str, str]]:
    headers = {} if exc.retry_after_s is None else {"Retry-After": str(exc.retry_after_s)}
    return Response({"error": exc.reason, "field": exc.field}, status_code=exc.status, headers=headers)


def _forbidden(_: Request[None, None, State], exc: Forbidden) -> Response[dict[str, str]]:
    return Response({"error": str(exc), "missing_permission": exc.permission}, status_code=403)


def _broker_down(_: Request[None, None, State], exc: BrokerUnavailable) -> Response[dict[str, str]]:
    return Response(
        {"error": f"event store unavailable, retry later ({exc})"},
        status_code=503,
        headers={"Retry-After": str(exc.retry_after_s)},
    )


def _http_error_handler(
    metrics: Metrics,
) -> Callable[[Request[None, None, State], HTTPException], Response[dict[str, str]]]:
    def handle(_: Request[None, None, State], exc: HTTPException) -> Response[dict[str, str]]:
        if exc.status_code == HTTP_413_REQUEST_ENTITY_TOO_LARGE:
            metrics.events_dropped.add(1, {"reason": "too_large"})
        return Response({"error": exc.detail}, status_code=exc.status_code, headers=exc.headers)

    return handle


def create_collector_app(settings: Settings, tracing: Tracing | None = None) -> ASGIApp:
    metrics_ = process_metrics(settings.metrics_enabled)
    engine = create_engine(settings.effective_database_url)
    publisher = EventPublisher(settings, metrics_)
    sites = SiteDirectory(AccountsSiteSource(Accounts(engine)), settings.site_cache_ttl_s)
    edge = edge_for(settings, engine)
    ingest = Ingest(settings, sites, edge, publisher, metrics_, tracing or Tracing(enabled=False))
    server_api = ServerEventsApi(settings, sites, edge, ingest, TokenService(settings, engine), metrics_)
    tracker = TrackerScript(settings.tracker_path)

    @asynccontextmanager
    async def lifespan(_: Litestar) -> AsyncIterator[None]:
        await publisher.start()
        try:
            yield
        finally:
            await publisher.stop()
            await engine.dispose()

    app = Litestar(
        route_handlers=[
            *event_routes(ingest, settings),
            *server_event_routes(server_api, settings),
            tracker_script,
            pinned_tracker_script(tracker.asset.versioned_name),
            health_handler("collector", lambda: {"kafka": publisher.ready}),
            metrics,
        ],
        dependencies={
            "tracker": Provide(lambda: tracker, sync_to_thread=False),
        },
        exception_handlers={
            Rejection: _rejected,
            Forbidden: _forbidden,
            BrokerUnavailable: _broker_down,
            HTTPException: _http_error_handler(metrics_),
        },
        cors_config=CORSConfig(allow_origins=["*"], allow_methods=["GET", "POST"], allow_credentials=False),
        request_max_body_size=settings.max_body_bytes,
        openapi_config=OpenAPIConfig(
            title="Pulse collector",
            version="1",
            path="/schema",
            components=Components(
                security_schemes={"bearer": SecurityScheme(type="http", scheme="bearer", bearer_format="JWT")}
            ),
        ),
        lifespan=[lifespan],
    )
    return http_metrics("collector", metrics_)(app) if settings.metrics_enabled else app
