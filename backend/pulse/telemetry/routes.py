"""/healthz and /metrics, mounted by every role."""

from __future__ import annotations

from collections.abc import Callable, Mapping

from litestar import Response, get
from litestar.handlers import HTTPRouteHandler

from pulse.telemetry.metrics import render_prometheus

HealthCheck = Callable[[], Mapping[str, bool]]


def health_handler(role: str, check: HealthCheck) -> HTTPRouteHandler:
    """Liveness with the state of each dependency; 200 while the process can serve its role."""

    @get("/healthz", include_in_schema=False, sync_to_thread=False)
    def healthz() -> dict[str, object]:
        return {"role": role, "status": "ok", "dependencies": dict(check())}

    return healthz


@get("/metrics", include_in_schema=False, sync_to_thread=False)
def metrics() -> Response[bytes]:
    body, content_type = render_prometheus()
    return Response(body, media_type=content_type)
