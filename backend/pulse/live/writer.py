"""Worker side of the live layer: per-second counters, active visitors, one tick per site.

Redis is a cache: everything here expires, and a lost write only dims the live view;
ClickHouse keeps the counts.
"""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Sequence

import msgspec
from redis.asyncio import Redis
from redis.asyncio.client import Pipeline

from pulse.events.message import AnyEvent
from pulse.live.keys import ACTIVE_WINDOW_S, SECONDS_TTL_S, active_key, seconds_key, tick_channel


class Tick(msgspec.Struct, frozen=True):
    site_id: str
    ts_ms: int
    pageviews: int
    events: int
    newest_ms: int


_encode = msgspec.json.Encoder().encode

# Reading-time pings keep a visitor active but are not events a site owner counts.
ENGAGEMENT = "engagement"


class LiveWriter:
    def __init__(self, redis: Redis) -> None:
        self._redis = redis

    async def apply(self, events: Sequence[AnyEvent]) -> None:
        per_site: dict[tuple[str, str], list[AnyEvent]] = defaultdict(list)
        for event in events:
            per_site[(event.tenant_id, event.site_id)].append(event)
        now_ms = int(time.time() * 1000)
        pipe = self._redis.pipeline(transaction=False)
        for (tenant_id, site_id), site_events in per_site.items():
            self._count_seconds(pipe, tenant_id, site_id, site_events)
            key = active_key(tenant_id, site_id)
            pipe.zadd(key, {str(e.visitor_id): e.ts_ms for e in site_events})
            pipe.zremrangebyscore(key, 0, now_ms - ACTIVE_WINDOW_S * 1000)
            pipe.expire(key, ACTIVE_WINDOW_S * 2)
            tick = Tick(
                site_id=site_id,
                ts_ms=now_ms,
                pageviews=sum(1 for e in site_events if e.name == "pageview"),
                events=sum(1 for e in site_events if e.name != ENGAGEMENT),
                newest_ms=max(e.ts_ms for e in site_events),
            )
            pipe.publish(tick_channel(tenant_id, site_id), _encode(tick))
        await pipe.execute()

    @staticmethod
    def _count_seconds(pipe: Pipeline, tenant_id: str, site_id: str, events: Sequence[AnyEvent]) -> None:
        counts: dict[tuple[int, int], int] = defaultdict(int)
        for e in events:
            if e.name == ENGAGEMENT:
                continue
            second = e.ts_ms // 1000
            counts[(second // 60, second % 60)] += 1
        minutes = set()
        for (minute, second), n in counts.items():
            pipe.hincrby(seconds_key(tenant_id, site_id, minute), str(second), n)
            minutes.add(minute)
        for minute in minutes:
            pipe.expire(seconds_key(tenant_id, site_id, minute), SECONDS_TTL_S)

    async def restore(
        self,
        seconds: Sequence[tuple[str, str, int, int]],
        active: Sequence[tuple[str, str, int, int]],
    ) -> None:
        """Overwrite the live window with what ClickHouse holds, after a worker (re)starts.

        `seconds` is (tenant, site, epoch second, events), `active` is (tenant, site, visitor,
        last seen ms). Values are set, not added, so restoring twice changes nothing.
        """
        pipe = self._redis.pipeline(transaction=False)
        for tenant_id, site_id, second, count in seconds:
            key = seconds_key(tenant_id, site_id, second // 60)
            pipe.hset(key, str(second % 60), count)
            pipe.expire(key, SECONDS_TTL_S)
        for tenant_id, site_id, visitor, seen_ms in active:
            key = active_key(tenant_id, site_id)
            pipe.zadd(key, {str(visitor): seen_ms})
            pipe.expire(key, ACTIVE_WINDOW_S * 2)
        await pipe.execute()
