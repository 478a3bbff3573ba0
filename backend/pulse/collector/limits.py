"""Token-bucket rate limits kept in the collector process, per IP and per site.

Limits are per replica: N replicas behind a load balancer admit up to N times the rate,
which is the point of adding replicas. The bucket table is bounded, so a flood of distinct
keys costs memory that is capped, and the least recently seen keys are forgotten first.
"""

from __future__ import annotations

import math
import time
from collections import OrderedDict
from collections.abc import Callable


class RateLimiter:
    def __init__(
        self,
        rate_per_s: float,
        burst: float,
        max_keys: int = 100_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._rate = rate_per_s
        self._burst = max(burst, 1.0)
        self._max_keys = max_keys
        self._clock = clock
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()

    @property
    def enabled(self) -> bool:
        return self._rate > 0

    def take(self, key: str, cost: float = 1.0) -> float:
        """0 when admitted; otherwise the seconds until `cost` tokens will be there."""
        if not self.enabled:
            return 0.0
        now = self._clock()
        tokens, last = self._buckets.pop(key, (self._burst, now))
        tokens = min(self._burst, tokens + (now - last) * self._rate)
        if tokens >= cost:
            tokens -= cost
            wait = 0.0
        else:
            wait = (min(cost, self._burst) - tokens) / self._rate
        self._buckets[key] = (tokens, now)
        if len(self._buckets) > self._max_keys:
            self._buckets.popitem(last=False)
        return wait

    def available(self, key: str) -> float:
        """The tokens `key` could take now, for a remaining-requests header; takes none."""
        if not self.enabled:
            return self._burst
        tokens, last = self._buckets.get(key, (self._burst, self._clock()))
        return min(self._burst, tokens + (self._clock() - last) * self._rate)


def retry_after_s(wait: float) -> int:
    """Whole seconds for the Retry-After header, at least 1."""
    return max(1, math.ceil(wait))
