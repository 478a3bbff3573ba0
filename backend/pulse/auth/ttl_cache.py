"""A small in-process cache whose entries are believed for a few seconds.

Token verification asks the OLTP store whether a tenant still exists and whether an API key is
still valid. Asking on every request would put a query in front of each API call; believing the
answer for `ttl_s` bounds how long a change (a revoked key) takes to reach every replica.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable


class TtlCache[K, V]:
    def __init__(
        self, ttl_s: float, clock: Callable[[], float] = time.monotonic, max_entries: int = 10_000
    ) -> None:
        self._ttl_s = ttl_s
        self._clock = clock
        # Bounded, least recently stored first out, so many distinct keys cost capped memory.
        self._max_entries = max_entries
        self._entries: OrderedDict[K, tuple[float, V]] = OrderedDict()

    async def get(self, key: K, load: Callable[[], Awaitable[V]]) -> V:
        """The cached value, or `load()`'s when there is none younger than ttl_s."""
        now = self._clock()
        entry = self._entries.get(key)
        # A clock that went back makes an entry look young for too long: it is reloaded instead.
        if entry is not None and entry[0] <= now < entry[0] + self._ttl_s:
            return entry[1]
        value = await load()
        self.put(key, value, now)
        return value

    def put(self, key: K, value: V, now: float | None = None) -> None:
        self._entries.pop(key, None)
        self._entries[key] = (self._clock() if now is None else now, value)
        if len(self._entries) > self._max_entries:
            self._entries.popitem(last=False)

    def forget(self, key: K) -> None:
        self._entries.pop(key, None)
