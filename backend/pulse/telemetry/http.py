"""Per-route HTTP metrics around the whole ASGI app: requests by status, time to first byte.

It wraps the app from outside rather than as Litestar middleware: a Litestar middleware adds
an exception-handling layer to every route, which cost 10% of the collector's throughput in
bench/metrics_overhead.py. Litestar writes the matched route into the shared scope while
routing, so the route label is known by the time the response starts.

Time to first byte rather than to the last one, so a live stream that stays open for an
hour does not read as an hour-long request.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from litestar.enums import ScopeType
from litestar.types import ASGIApp, Message, Receive, Scope, Send

from pulse.telemetry.metrics import Metrics


def http_metrics(role: str, metrics: Metrics) -> Callable[[ASGIApp], ASGIApp]:
    def middleware(app: ASGIApp) -> ASGIApp:
        async def measured(scope: Scope, receive: Receive, send: Send) -> None:
            if scope["type"] != ScopeType.HTTP:
                await app(scope, receive, send)
                return
            started = time.perf_counter()

            async def send_measured(message: Message) -> None:
                if message["type"] == "http.response.start":
                    # Label values in the order the instruments declare: role, route, method(, status).
                    route = (role, scope.get("path_template", "unmatched"), scope["method"])
                    metrics.http_duration.record_values((time.perf_counter() - started) * 1000, route)
                    metrics.http_requests.add_values(1, (*route, str(message["status"])))
                await send(message)

            await app(scope, receive, send_measured)

        return measured

    return middleware
