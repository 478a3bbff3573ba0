"""One Redis subscription per dashboard process, fanned out to its live-view clients.

A tick is serialised once by the worker and forwarded as-is to every client of that
site. A client whose queue is full is too slow to keep up: it is disconnected (the
browser's EventSource reconnects) rather than buffered without bound.
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
from pulse.tenancy import TenantScope

log = logging.getLogger(__name__)

CLIENT_QUEUE = 64


class SlowClient(Exception):
    """The client fell behind and was dropped."""


class TickHub:
    def __init__(self, redis: Redis) -> None:
        self._redis = redis
        self._clients: dict[str, set[asyncio.Queue[bytes | None]]] = defaultdict(set)
        self._task: asyncio.Task[None] | None = None
        self.subscribed = False

    def start(self) -> None:
        self._task = asyncio.create_task(self._pump())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    @contextlib.asynccontextmanager
    async def subscribe(self, scope: TenantScope, site_id: str) -> AsyncIterator[asyncio.Queue[bytes | None]]:
        channel = tick_channel(scope.tenant_id, site_id)
        queue: asyncio.Queue[bytes | None] = asyncio.Queue(CLIENT_QUEUE)
        self._clients[channel].add(queue)
        try:
            yield queue
        finally:
            self._clients[channel].discard(queue)
            if not self._clients[channel]:
                del self._clients[channel]

    def end_streams(self) -> None:
        """Ends every client's stream (the process is stopping): an open live view would otherwise
        keep the server waiting for its response to finish, and the browser reconnects elsewhere."""
        for queues in self._clients.values():
            for queue in queues:
                if queue.full():
                    queue.get_nowait()
                queue.put_nowait(None)

    def _fan_out(self, channel: str, payload: bytes) -> None:
        for queue in list(self._clients.get(channel, ())):
            try:
                queue.put_nowait(payload)
            except asyncio.QueueFull:
                self._clients[channel].discard(queue)
                with contextlib.suppress(asyncio.QueueFull):
                    queue.get_nowait()
                    queue.put_nowait(None)

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
