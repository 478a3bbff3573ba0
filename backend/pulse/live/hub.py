"""One Redis subscription per dashboard process, fanned out to its live-view clients.

A tick is framed as a Server-Sent Event once, when it arrives, and the same bytes object is
queued for every client of that site: the per-client cost is a queue put and a socket write.
A client whose queue is full is too slow to keep up: it is disconnected (the browser's
EventSource reconnects) rather than buffered without bound.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import defaultdict
from collections.abc import AsyncIterator

from redis.asyncio import Redis
from redis.exceptions import RedisError

from pulse.live.keys import TICK_PATTERN, tick_channel
from pulse.telemetry.metrics import Metrics
from pulse.tenancy import TenantScope

log = logging.getLogger(__name__)

CLIENT_QUEUE = 64
# Proxies and browsers give up on a connection that stays silent for long.
KEEPALIVE_S = 15.0


def sse_frame(event: str, data: bytes) -> bytes:
    """One `event:`/`data:` frame. Ticks are JSON on one line; a line break would end the data early."""
    if b"\n" in data or b"\r" in data:
        data = b"\ndata: ".join(data.replace(b"\r\n", b"\n").replace(b"\r", b"\n").split(b"\n"))
    return b"event: " + event.encode() + b"\ndata: " + data + b"\n\n"


READY = sse_frame("ready", b"{}")
KEEPALIVE = b": keepalive\n\n"


class TickHub:
    def __init__(self, redis: Redis, metrics: Metrics) -> None:
        self._redis = redis
        self._metrics = metrics
        self._clients: dict[str, set[asyncio.Queue[bytes | None]]] = defaultdict(set)
        self._tasks: list[asyncio.Task[None]] = []
        self.subscribed = False

    def start(self) -> None:
        self._tasks = [asyncio.create_task(self._pump()), asyncio.create_task(self._keep_alive())]

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task

    @contextlib.asynccontextmanager
    async def subscribe(self, scope: TenantScope, site_id: str) -> AsyncIterator[asyncio.Queue[bytes | None]]:
        """A queue of SSE frames for the site's ticks; None means the stream is over (dropped or stopping)."""
        channel = tick_channel(scope.tenant_id, site_id)
        queue: asyncio.Queue[bytes | None] = asyncio.Queue(CLIENT_QUEUE)
        self._clients[channel].add(queue)
        self._metrics.sse_clients.add(1)
        try:
            yield queue
        finally:
            self._metrics.sse_clients.add(-1)
            self._clients[channel].discard(queue)
            if not self._clients[channel]:
                del self._clients[channel]

    def end_streams(self) -> None:
        """Ends every client's stream (the process is stopping): an open live view would otherwise
        keep the server waiting for its response to finish, and the browser reconnects elsewhere."""
        for queues in self._clients.values():
            for queue in queues:
                _end(queue)

    def _fan_out(self, channel: str, payload: bytes) -> None:
        queues = self._clients.get(channel)
        if queues:
            # Counted once per tick, not per client: per client it cost more than the socket write.
            self._metrics.sse_ticks.add(self._put(queues, sse_frame("tick", payload)))

    @staticmethod
    def _put(queues: set[asyncio.Queue[bytes | None]], frame: bytes) -> int:
        """Queues the frame for every client that keeps up; returns how many that was."""
        queued = 0
        for queue in list(queues):
            try:
                queue.put_nowait(frame)
                queued += 1
            except asyncio.QueueFull:
                queues.discard(queue)
                _end(queue)
        return queued

    async def _keep_alive(self) -> None:
        """One timer for every client, rather than a timeout on each client's every wait."""
        while True:
            await asyncio.sleep(KEEPALIVE_S)
            for queues in list(self._clients.values()):
                self._put(queues, KEEPALIVE)

    async def _pump(self) -> None:
        delay = 0.2
        while True:
            try:
                async with self._redis.pubsub() as pubsub:
                    await pubsub.psubscribe(TICK_PATTERN)
                    self.subscribed = True
                    delay = 0.2
                    async for message in pubsub.listen():
                        if message["type"] == "pmessage":
                            channel = message["channel"]
                            name = channel.decode() if isinstance(channel, bytes) else channel
                            data = message["data"]
                            self._fan_out(name, data if isinstance(data, bytes) else data.encode())
            except (RedisError, OSError) as exc:
                self.subscribed = False
                log.warning("live tick subscription lost (%s); reconnecting in %.1fs", exc, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)


def _end(queue: asyncio.Queue[bytes | None]) -> None:
    """Replaces what the client has not read with the end marker: it reconnects to a fresh state,
    and a client that reads nothing any more holds no frames, only its socket's own buffer."""
    while not queue.empty():
        queue.get_nowait()
    queue.put_nowait(None)
