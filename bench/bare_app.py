"""The floor for bench/collector.py: a Litestar endpoint that accepts a beacon and does nothing.

It reads the body and answers 202 with the collector's reply shape, so the ratio of the
collector's rate to this one is what the collector's own work (decode, site lookup, stamp,
acknowledged Kafka write, metrics, CORS) costs on top of Litestar and uvicorn.
"""

from __future__ import annotations

from litestar import Litestar, Request, post
from litestar.datastructures import State


@post("/api/event", status_code=202)
async def event(request: Request[None, None, State]) -> dict[str, int]:
    await request.body()
    return {"accepted": 1}


app = Litestar(route_handlers=[event])
