"""What the collector derives from the IP and User-Agent before it forgets the IP."""

from __future__ import annotations

import asyncio
import functools
import hashlib
import ipaddress
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Protocol


def client_ip(peer: str | None, forwarded_for: str | None, trusted_proxies: tuple[str, ...]) -> str:
    """The left-most forwarded address counts only when the direct peer is a trusted proxy."""
    peer = peer or ""
    if forwarded_for and peer in trusted_proxies:
        candidate = forwarded_for.split(",", 1)[0].strip()
        try:
            return str(ipaddress.ip_address(candidate))
        except ValueError:
            return peer
    return peer


class SaltSource(Protocol):
    async def salt_for(self, day: str) -> bytes: ...


class DailySalt:
    """Today's salt, fetched once per UTC day per process, forgotten when the day ends."""

    def __init__(self, source: SaltSource, clock: Callable[[], float] = time.time) -> None:
        self._source = source
        self._clock = clock
        self._day = -1
        self._salt = b""
        self._lock = asyncio.Lock()

    async def current(self) -> bytes:
        day = int(self._clock() // 86_400)
        if day == self._day:
            return self._salt
        async with self._lock:
            if day != self._day:
                name = datetime.fromtimestamp(day * 86_400, UTC).strftime("%Y-%m-%d")
                self._salt = await self._source.salt_for(name)
                self._day = day
        return self._salt


def visitor_id(salt: bytes, site_id: str, ip: str, user_agent: str) -> int:
    """A 64-bit visitor id under the day's random salt, so visitors cannot be followed across days."""
    return _keyed_id(salt, site_id, ip, user_agent)


def first_party_visitor_id(secret: str, site_id: str, client_id: str) -> int:
    """The visitor id for a browser that keeps its own random id (data-visitor="cookie").

    It does not rotate, because the site chose to recognise returning visitors; a key of its
    own keeps these ids apart from the daily ones.
    """
    return _keyed_id(_derived_key(secret, "first-party"), site_id, client_id)


@functools.lru_cache(maxsize=8)
def _derived_key(secret: str, purpose: str) -> bytes:
    """Derived once per purpose, not on every beacon."""
    return hashlib.sha256(f"{secret}:{purpose}".encode()).digest()


def _keyed_id(key: bytes, *parts: str) -> int:
    digest = hashlib.blake2b("\x00".join(parts).encode(), key=key, digest_size=8).digest()
    return int.from_bytes(digest, "big")
