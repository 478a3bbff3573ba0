"""What a read found, believed for a few seconds: a page asks the same several times."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Hashable


class Recent[K: Hashable, V]:
    def __init__(self, ttl_s: float) -> None:
        """`ttl_s` 0 believes nothing: every call reads."""
        self._ttl_s = ttl_s
        self._found: dict[K, tuple[float, V]] = {}

    async def get(self, key: K, read: Callable[[], Awaitable[V]]) -> V:
        now = time.monotonic()
        if (found := self._found.get(key)) is not None and found[0] > now:
            return found[1]
        value = await read()
        if self._ttl_s > 0:
            # Entries of other keys expire with the clock and are dropped here: a few per site.
            self._found = {k: v for k, v in self._found.items() if v[0] > now}
            self._found[key] = (now + self._ttl_s, value)
        return value
