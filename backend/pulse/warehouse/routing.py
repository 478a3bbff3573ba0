"""Which ClickHouse database holds each tenant's events: the shared one, or the tenant's own.

The OLTP store says (tenants.clickhouse_database, set by `pulse tenant isolate`); a process reads
the few tenants on a database of their own at most once per `ttl_s` and routes by that, so a map
is used at most `ttl_s` after its read began: `pulse tenant isolate` waits that out before it
moves the tenant's past events.

While the OLTP store cannot be read, the last map read is kept (and the failure logged) rather
than stopping every worker: only a tenant moved during the outage is affected, its events still
written to the shared database, once; the command finds them there and says to run it again,
which moves them. Before any map has been read, a failure is raised: the worker holds its batch.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable, Mapping

from sqlalchemy.exc import SQLAlchemyError

log = logging.getLogger(__name__)


class TenantDatabaseRouting:
    """`TenantDatabases` (pulse.warehouse.reader) backed by the OLTP store, cached per process."""

    def __init__(
        self,
        shared: str,
        source: Callable[[], Awaitable[Mapping[str, str]]],
        ttl_s: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.shared = shared
        self._source = source
        self._ttl_s = ttl_s
        self._clock = clock
        self._dedicated: dict[str, str] | None = None
        self._fresh_until = float("-inf")

    async def database(self, tenant_id: str) -> str:
        return (await self.dedicated()).get(tenant_id, self.shared)

    async def dedicated(self) -> Mapping[str, str]:
        """Tenant id → database, for the tenants on a database of their own."""
        started = self._clock()
        if started >= self._fresh_until or self._dedicated is None:
            try:
                # Callers racing here each read; whichever answer lands last is at most ttl_s old
                # when it expires, which is all routing needs.
                self._dedicated = dict(await self._source())
            except (SQLAlchemyError, OSError) as exc:
                if self._dedicated is None:
                    raise
                log.warning("tenant databases not read again (%s); routing by the last map read", exc)
            self._fresh_until = started + self._ttl_s
        return self._dedicated

    async def databases(self) -> list[str]:
        """Every tenant's own database, each once, in a stable order."""
        return sorted(set((await self.dedicated()).values()))
