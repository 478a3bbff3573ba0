"""`pulse loadgen`: sends the traffic model through the real collector at a steady rate."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections import Counter
from collections.abc import Callable

import httpx
import msgspec

from pulse.loadgen.traffic import TrafficModel

_encode = msgspec.json.Encoder().encode


class LoadResult(msgspec.Struct):
    """`sent` counts events, `accepted` those finally answered 202; `statuses` every answer,
    resends included, and `resent` how many resends it took."""

    sent: int = 0
    accepted: int = 0
    resent: int = 0
    statuses: dict[str, int] = msgspec.field(default_factory=dict)
    elapsed_s: float = 0.0


class Resend(msgspec.Struct, frozen=True):
    """What the tracker does with a refused beacon (429, 5xx), and here with a lost connection
    too: send it again, same id, after `delay_s`. attempts=0 sends every event once."""

    attempts: int = 0
    delay_s: float = 0.2


def _refused(status: int) -> bool:
    return status == 429 or status >= 500


async def run_load(
    collector_url: str,
    model: TrafficModel,
    rate: float,
    duration_s: float | None = None,
    total: int | None = None,
    concurrency: int = 32,
    stop: asyncio.Event | None = None,
    on_progress: Callable[[LoadResult], None] | None = None,
    resend: Resend | None = None,
) -> LoadResult:
    """Single-event requests at `rate` per second until duration, total or stop, whichever first.

    Every event carries its own id (`x`), as the tracker's do, so a resent copy counts once.
    """
    resend = resend or Resend()
    stop = stop or asyncio.Event()
    result, statuses = LoadResult(), Counter[str]()
    started = time.monotonic()
    gate = asyncio.Semaphore(concurrency)
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)

    async def send(client: httpx.AsyncClient) -> None:
        hit = model.next_hit()
        headers = {"content-type": "text/plain", "user-agent": hit.user_agent, "x-forwarded-for": hit.ip}
        body = _encode({**hit.body, "x": uuid.uuid4().hex})
        try:
            for attempt in range(resend.attempts + 1):
                if attempt:
                    result.resent += 1
                    await asyncio.sleep(resend.delay_s)
                try:
                    response = await client.post("/api/event", content=body, headers=headers)
                except httpx.HTTPError as exc:
                    statuses[type(exc).__name__] += 1
                    continue
                statuses[str(response.status_code)] += 1
                if not _refused(response.status_code):
                    result.accepted += response.status_code == 202
                    return
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
