"""`pulse run ROLE...`: one or more roles in this process, stopped cleanly on SIGINT/SIGTERM."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import signal
from collections.abc import Coroutine, Generator, Sequence
from typing import Any, Literal, get_args

import uvicorn
import uvloop
from litestar import Litestar
from litestar.types import ASGIApp

from pulse.collector.app import create_collector_app
from pulse.dashboard.app import create_dashboard_app
from pulse.live.writer import LiveWriter
from pulse.oltp.accounts import Accounts
from pulse.oltp.replay_jobs import ReplayJobs
from pulse.replay.coordinator import ReplayCoordinator
from pulse.resources import Resources
from pulse.rollup.retention import TenantRetention
from pulse.rollup.sessions import Sessions
from pulse.rollup.worker import RollupWorker
from pulse.settings import Settings
from pulse.telemetry.routes import health_handler, metrics
from pulse.telemetry.tracing import configure_tracing, shutdown_tracing

log = logging.getLogger(__name__)

Role = Literal["collector", "rollup", "dashboard"]
ROLES: tuple[Role, ...] = get_args(Role)


class _Server(uvicorn.Server):
    """The process owns signal handling, because several servers share one event loop."""

    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None]:
        yield


def _server(app: ASGIApp, settings: Settings, port: int) -> _Server:
    config = uvicorn.Config(
        app,
        host=settings.bind_host,
        port=port,
        log_level="warning",
        access_log=False,
        lifespan="on",
        # The collector decides whom to believe about X-Forwarded-For (PULSE_TRUSTED_PROXIES).
        proxy_headers=False,
        server_header=False,
        # Requests in flight at SIGTERM are answered; one that hangs is cut after this, so that
        # the process exits within its orchestrator's grace period (docker's default is 10 s).
        timeout_graceful_shutdown=settings.shutdown_grace_s,
    )
    return _Server(config)


def serve(settings: Settings, roles: Sequence[Role]) -> None:
    """Run roles until SIGINT/SIGTERM, tuned as a long-lived server.

    uvloop, because uvicorn only installs it when it owns the loop, and here several servers
    share ours. The collector allocates many short-lived objects per request, and the cyclic
    collector walked every long-lived object (the libraries, their classes) again and again: what
    exists once everything is imported is frozen out of its view, and it runs less often.
    """
    asyncio.run(_serve_tuned(settings, roles), loop_factory=uvloop.new_event_loop)


async def _serve_tuned(settings: Settings, roles: Sequence[Role]) -> None:
    gc.collect()
    gc.freeze()
    gc.set_threshold(50_000, 20, 100)
    await run_roles(settings, roles)


async def run_roles(settings: Settings, roles: Sequence[Role], stop: asyncio.Event | None = None) -> None:
    stop = stop or asyncio.Event()
    resources = Resources(settings)
    tracing = configure_tracing(settings, "pulse-" + "-".join(roles))
    servers: list[_Server] = []
    jobs: list[Coroutine[Any, Any, None]] = []
    if "collector" in roles:
        servers.append(_server(create_collector_app(settings, tracing), settings, settings.collector_port))
    if "dashboard" in roles:
        servers.append(_server(create_dashboard_app(resources, stop), settings, settings.dashboard_port))
    if "rollup" in roles:
        worker = RollupWorker(
            settings,
            resources.warehouse,
            LiveWriter(resources.redis),
            Sessions(resources.redis),
            TenantRetention(Accounts(resources.engine).retention_by_tenant),
            resources.metrics,
            tracing,
            resources.tenant_databases,
        )
        health = health_handler("rollup", lambda: {"kafka": worker.connected})
        servers.append(_server(Litestar(route_handlers=[health, metrics]), settings, settings.rollup_port))
        jobs.append(worker.run(stop))
        replays = ReplayCoordinator(
            settings, resources.warehouse, ReplayJobs(resources.engine), worker.caught_up
        )
        jobs.append(replays.run(stop))

    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, stop.set)

    async def stop_servers() -> None:
        await stop.wait()
        for server in servers:
            server.should_exit = True

    try:
        await asyncio.gather(*(s.serve() for s in servers), *jobs, stop_servers())
    finally:
        stop.set()
        await resources.close()
        shutdown_tracing()
