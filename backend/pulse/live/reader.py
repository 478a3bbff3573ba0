"""Dashboard side of the live layer, always inside a tenant scope."""

from __future__ import annotations

import time

import msgspec
from redis.asyncio import Redis

from pulse.live.keys import ACTIVE_WINDOW_S, active_key, recent_key, seconds_key
from pulse.live.tick import RECENT_KEPT, LiveEvent
from pulse.tenancy import TenantScope

_listed = msgspec.json.Decoder(LiveEvent)


class LiveReader:
    def __init__(self, redis: Redis) -> None:
        self._redis = redis

    async def current_visitors(self, scope: TenantScope, site_id: str) -> int:
        now_ms = int(time.time() * 1000)
        key = active_key(scope.tenant_id, site_id)
        return int(await self._redis.zcount(key, now_ms - ACTIVE_WINDOW_S * 1000, "+inf"))

    async def per_second(self, scope: TenantScope, site_id: str, seconds: int = 120) -> list[tuple[int, int]]:
        """(epoch second, events) for the last `seconds` seconds, oldest first, zeros included."""
        now = int(time.time())
        first = now - seconds + 1
        minutes = list(range(first // 60, now // 60 + 1))
        pipe = self._redis.pipeline(transaction=False)
        for minute in minutes:
            pipe.hgetall(seconds_key(scope.tenant_id, site_id, minute))
        counts: dict[int, int] = {}
        for minute, fields in zip(minutes, await pipe.execute(), strict=True):
            for second, n in fields.items():
                counts[minute * 60 + int(second)] = int(n)
        return [(s, counts.get(s, 0)) for s in range(first, now + 1)]

    async def recent(self, scope: TenantScope, site_id: str) -> list[LiveEvent]:
        """The latest listed events the workers kept, newest first; empty once Redis lost them."""
        key = recent_key(scope.tenant_id, site_id)
        return [_listed.decode(raw) for raw in await self._redis.lrange(key, 0, RECENT_KEPT - 1)]
