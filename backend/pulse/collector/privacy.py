"""What the collector derives from the IP and User-Agent before it forgets the IP."""

from __future__ import annotations

import asyncio
import functools
import hashlib
import ipaddress
import time
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from typing import Protocol


class TrustedProxies:
    """PULSE_TRUSTED_PROXIES, parsed once: single addresses and CIDR networks."""

    __slots__ = ("_addresses", "_networks", "peer")

    def __init__(self, entries: Iterable[str]) -> None:
        networks = [ipaddress.ip_network(entry, strict=False) for entry in entries]
        self._addresses = frozenset(str(net.network_address) for net in networks if net.num_addresses == 1)
        self._networks = tuple(net for net in networks if net.num_addresses > 1)
        # Whether a socket peer is trusted. Behind a load balancer the peer is one of a few
        # addresses, so each is parsed once rather than on every request.
        self.peer: Callable[[str], bool] = functools.lru_cache(maxsize=256)(self._peer)

    def _peer(self, address: str) -> bool:
        try:
            ip = ipaddress.ip_address(address)
        except ValueError:
            return False
        return self.covers(str(ip), ip)

    def covers(self, address: str, ip: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
        """Whether a parsed address (and its canonical text) is trusted."""
        return address in self._addresses or any(ip in network for network in self._networks)


def client_ip(peer: str | None, forwarded_for: str | None, trusted_proxies: TrustedProxies) -> str:
    """The visitor's address: the peer, or behind trusted proxies the nearest hop they did not add.

    Each proxy appends the address it saw, so X-Forwarded-For is read from the right and the
    first address that is not a trusted proxy wins: anything further left was written by the
    visitor and may be forged. An unreadable hop stops the walk at the last proxy that passed
    it on, exactly as if the header had ended there.
    """
    hop = peer or ""
    if not forwarded_for or not trusted_proxies.peer(hop):
        return hop
    for candidate in reversed(forwarded_for.split(",")):
        try:
            ip = ipaddress.ip_address(candidate.strip())
        except ValueError:
            return hop
        hop = str(ip)
        if not trusted_proxies.covers(hop, ip):
            return hop
    return hop


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
