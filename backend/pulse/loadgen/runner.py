"""`pulse loadgen`: sends the traffic model through the real collector at a steady rate."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Callable

import httpx
import msgspec

from pulse.loadgen.traffic import TrafficModel

_encode = msgspec.json.Encoder().encode


class LoadResult(msgspec.Struct):
    sent: int = 0
    accepted: int = 0
    statuses: dict[str, int] = msgspec.field(default_factory=dict)
    elapsed_s: float = 0.0


async def run_load(
    collector_url: str,
    model: TrafficModel,
    rate: float,
    duration_s: float | None = None,
    total: int | None = None,
    concurrency: int = 32,
    stop: asyncio.Event | None = None,
    on_progress: Callable[[LoadResult], None] | None = None,
) -> LoadResult:
    """Single-event requests at `rate` per second until duration, total or stop, whichever first."""
    stop = stop or asyncio.Event()
    result, statuses = LoadResult(), Counter[str]()
    started = time.monotonic()
    gate = asyncio.Semaphore(concurrency)
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)

    async def send(client: httpx.AsyncClient) -> None:
        hit = model.next_hit()
        headers = {"content-type": "text/plain", "user-agent": hit.user_agent, "x-forwarded-for": hit.ip}
        try:
            response = await client.post("/api/event", content=_encode(hit.body), headers=headers)
            statuses[str(response.status_code)] += 1
            result.accepted += response.status_code == 202
        except httpx.HTTPError as exc:
            statuses[type(exc).__name__] += 1
        finally:
            gate.release()

    async with (
        httpx.AsyncClient(base_url=collector_url, limits=limits, timeout=10) as client,
        asyncio.TaskGroup() as tg,
    ):
        while not stop.is_set():
            elapsed = time.monotonic() - started
            if (duration_s is not None and elapsed >= duration_s) or (
                total is not None and result.sent >= total
            ):
                break
            due = int(elapsed * rate) + 1
            if result.sent >= due:
                await asyncio.sleep(min(0.01, 1 / rate))
                continue
            await gate.acquire()
            result.sent += 1
            tg.create_task(send(client))
            if on_progress is not None and result.sent % 50 == 0:
                result.statuses = dict(statuses)
                on_progress(result)
    result.statuses = dict(statuses)
    result.elapsed_s = time.monotonic() - started
    return result
