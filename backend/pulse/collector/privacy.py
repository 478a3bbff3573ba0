"""What the collector derives from the IP and User-Agent before it forgets the IP."""

from __future__ import annotations

import functools
import hashlib
import ipaddress
from datetime import UTC, datetime


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


def visitor_id(secret: str, site_id: str, ip: str, user_agent: str, now: datetime | None = None) -> int:
    """A 64-bit visitor id that changes every UTC day, so visitors cannot be followed across days."""
    day = (now or datetime.now(UTC)).strftime("%Y-%m-%d")
    return _keyed_id(_derived_key(secret, day), site_id, ip, user_agent)


def first_party_visitor_id(secret: str, site_id: str, client_id: str) -> int:
    """The visitor id for a browser that keeps its own random id (data-visitor="cookie").

    It does not rotate, because the site chose to recognise returning visitors; a key of its
    own keeps these ids apart from the daily ones.
    """
    return _keyed_id(_derived_key(secret, "first-party"), site_id, client_id)


@functools.lru_cache(maxsize=8)
def _derived_key(secret: str, purpose: str) -> bytes:
    """Derived once per day and purpose, not on every beacon."""
    return hashlib.sha256(f"{secret}:{purpose}".encode()).digest()


def _keyed_id(key: bytes, *parts: str) -> int:
    digest = hashlib.blake2b("\x00".join(parts).encode(), key=key, digest_size=8).digest()
    return int.from_bytes(digest, "big")
