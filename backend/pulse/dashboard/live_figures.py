"""The live figures of a site: from Redis, or from ClickHouse while Redis is down.

Redis is a cache (ARCHITECTURE.md): losing it must not take the dashboard down. The breaker
keeps a dead Redis from costing every page its connect timeout; the page then says that it
shows figures read from ClickHouse and that pushed updates are paused.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Literal

import msgspec
from redis.exceptions import RedisError

from pulse.breaker import CircuitBreaker, DependencyDown
from pulse.live.keys import ACTIVE_WINDOW_S
from pulse.live.reader import LiveReader
from pulse.live.tick import MAX_PATH, RECENT_KEPT, LiveEvent
from pulse.stats.queries import LIVE_RECENT, LIVE_SECONDS, LIVE_VISITORS
from pulse.tenancy import TenantScope
from pulse.warehouse.reader import ScopedReader

LIVE_SECONDS_SHOWN = 120
# How far back the live view's stream looks in ClickHouse when Redis holds no list.
RECENT_LOOKBACK_S = 86_400
REDIS_FAILURES = (RedisError, OSError, TimeoutError)


class LiveFigures(msgspec.Struct, frozen=True):
    current_visitors: int
    # (epoch second, events), oldest first, zeros included.
    per_second: list[tuple[int, int]]
    source: Literal["redis", "clickhouse"]

    @property
    def degraded(self) -> bool:
        return self.source != "redis"


class LiveSource:
    def __init__(self, live: LiveReader, reader: ScopedReader, breaker: CircuitBreaker) -> None:
        self._live = live
        self._reader = reader
        self._breaker = breaker

    async def figures(
        self, scope: TenantScope, site_id: str, seconds: int = LIVE_SECONDS_SHOWN
    ) -> LiveFigures:
        """`seconds`: how many of the last seconds `per_second` covers."""
        try:
            return await self._breaker.call(lambda: self._from_redis(scope, site_id, seconds), REDIS_FAILURES)
        except (DependencyDown, *REDIS_FAILURES):
            return await self._from_clickhouse(scope, site_id, seconds)

    async def recent(self, scope: TenantScope, site_id: str) -> list[LiveEvent]:
        """The latest pageviews and events, newest first: the workers' list in Redis, or ClickHouse's
        newest rows while Redis is down or has lost the list."""
        try:
            listed = await self._breaker.call(lambda: self._live.recent(scope, site_id), REDIS_FAILURES)
        except (DependencyDown, *REDIS_FAILURES):
            listed = []
        if listed:
            return listed
        since = _utc(int(time.time()) - RECENT_LOOKBACK_S)
        rows = await self._reader.select(
            scope, LIVE_RECENT, {"site_id": site_id, "since": since, "limit": RECENT_KEPT}
        )
        return [
            LiveEvent(
                ts_ms=int(ts_ms),
                name=name,
                path=path[:MAX_PATH],
                source=source,
                country=country,
                device=device,
                browser=browser,
            )
            for ts_ms, name, path, source, country, device, browser in rows
        ]

    async def _from_redis(self, scope: TenantScope, site_id: str, seconds: int) -> LiveFigures:
        return LiveFigures(
            current_visitors=await self._live.current_visitors(scope, site_id),
            per_second=await self._live.per_second(scope, site_id, seconds),
            source="redis",
        )

    async def _from_clickhouse(self, scope: TenantScope, site_id: str, seconds: int) -> LiveFigures:
        now = int(time.time())
        first = now - seconds + 1
        visitors = await self._reader.select(
            scope, LIVE_VISITORS, {"site_id": site_id, "since": _utc(now - ACTIVE_WINDOW_S)}
        )
        rows = await self._reader.select(scope, LIVE_SECONDS, {"site_id": site_id, "since": _utc(first)})
        counts = {int(second): int(n) for second, n in rows}
        return LiveFigures(
            current_visitors=int(visitors[0][0]) if visitors else 0,
            per_second=[(s, counts.get(s, 0)) for s in range(first, now + 1)],
            source="clickhouse",
        )


def _utc(epoch_s: int) -> datetime:
    return datetime.fromtimestamp(epoch_s, UTC)
