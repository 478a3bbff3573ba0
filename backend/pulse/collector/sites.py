"""Site key → tenant, cached so the OLTP store is not on every beacon's path."""

from __future__ import annotations

import time
from collections import OrderedDict
from typing import Protocol

import msgspec

from pulse.oltp.accounts import VisitorMode


class SiteRecord(msgspec.Struct, frozen=True):
    site_id: str
    tenant_id: str
    disabled: bool
    allowed_hosts: tuple[str, ...] = ()
    visitor_mode: VisitorMode = "cookieless"

    def accepts_host(self, host: str) -> bool:
        """Exact names match themselves; `*.shop.example` matches every subdomain of shop.example.

        No allowed hosts means any host.
        """
        if not self.allowed_hosts:
            return True
        host = host.lower().rstrip(".")
        return any(
            host.endswith(pattern[1:]) if pattern.startswith("*.") else host == pattern
            for pattern in self.allowed_hosts
        )


class SiteSource(Protocol):
    async def lookup(self, site_id: str) -> SiteRecord | None: ...


class SiteDirectory:
    """Bounded TTL cache; unknown keys are cached too, so a flood of junk keys stays cheap."""

    def __init__(self, source: SiteSource, ttl_s: float, max_entries: int = 50_000) -> None:
        self._source = source
        self._ttl_s = ttl_s
        self._max = max_entries
        self._entries: OrderedDict[str, tuple[float, SiteRecord | None]] = OrderedDict()

    async def resolve(self, site_id: str) -> SiteRecord | None:
        now = time.monotonic()
        hit = self._entries.get(site_id)
        if hit is not None and hit[0] > now:
            return hit[1]
        record = await self._source.lookup(site_id)
        self._entries[site_id] = (now + self._ttl_s, record)
        self._entries.move_to_end(site_id)
        while len(self._entries) > self._max:
            self._entries.popitem(last=False)
        return record
