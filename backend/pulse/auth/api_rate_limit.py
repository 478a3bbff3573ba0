"""Per-caller request limits on the API, shared by every dashboard replica through Redis.

A fixed one-minute window per caller: INCR and EXPIRE in one round trip. Its edge lets a caller
spend two windows' worth across a minute boundary, which a limit meant to stop runaway scripts
can afford. While Redis is down (its breaker open) each replica falls back to its own token
bucket of the same rate: callers are then limited per replica, never unlimited, never refused.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable

import msgspec
from redis.asyncio import Redis
from redis.exceptions import RedisError

from pulse.breaker import CircuitBreaker, DependencyDown
from pulse.collector.limits import RateLimiter

WINDOW_S = 60


class Decision(msgspec.Struct, frozen=True, kw_only=True):
    limit: int
    remaining: int
    # 0 when the request is admitted; otherwise whole seconds until the caller may try again.
    retry_after_s: int = 0

    @property
    def admitted(self) -> bool:
        return self.retry_after_s == 0


class ApiRateLimit:
    def __init__(
        self,
        redis: Redis,
        per_min: int,
        breaker: CircuitBreaker,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._redis = redis
        self._limit = per_min
        self._breaker = breaker
        self._clock = clock
        self._fallback = RateLimiter(per_min / WINDOW_S, per_min)

    @property
    def enabled(self) -> bool:
        return self._limit > 0

    async def take(self, caller: str) -> Decision:
        """Counts one request of `caller` and says whether it is within the limit."""
        now = self._clock()
        window = int(now // WINDOW_S)
        try:
            count = await self._breaker.call(
                lambda: self._count(f"pulse:ratelimit:{caller}:{window}"), (RedisError, OSError)
            )
        except (DependencyDown, RedisError, OSError):
            wait = self._fallback.take(caller)
            remaining = int(self._fallback.available(caller))
            return Decision(limit=self._limit, remaining=remaining, retry_after_s=math.ceil(wait))
        if count > self._limit:
            retry = max(1, math.ceil((window + 1) * WINDOW_S - now))
            return Decision(limit=self._limit, remaining=0, retry_after_s=retry)
        return Decision(limit=self._limit, remaining=self._limit - count)

    async def _count(self, key: str) -> int:
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.incr(key)
            # Two windows, so a replica whose clock runs a little behind still finds the count.
            pipe.expire(key, 2 * WINDOW_S)
            count, _ = await pipe.execute()
        return int(count)
