"""Past UTC days folded in the background, so that no page waits for a fold (pulse.stats.visit_days).

A day is folded the first time a query needs it whole: bounce rate, visit duration, exit pages and
every filtered overview read the folds. Left to the read path, the first overview after midnight
pays for yesterday (about a second per 300,000 events on two cores), and the first one after an
upgrade that adds a fold pays for every day of its range (half a minute for a month of 10 million
events). The dashboard process instead folds, every few minutes, each enabled site's settled days
of the last `days`: the days the default periods and their comparisons read. A pass over days
already folded is one small query per site.

Embedded, a pass waits until the process has read from ClickHouse for a page: opening chDB costs a
dashboard some 300 MB, which one that only streams live views never pays (bench-dashboard's 5,000
SSE clients).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, date, datetime, timedelta

from pulse.oltp.accounts import Site
from pulse.stats.query_service import StatsQueries
from pulse.stats.rollup_plan import SETTLED
from pulse.tenancy import TenantScope
from pulse.warehouse.reader import WarehouseUnavailable

log = logging.getLogger(__name__)


def settled_days(now: datetime, days: int) -> tuple[date, ...]:
    """The `days` UTC days before `now`'s that are over and settled, oldest first."""
    last = (now - SETTLED).date() - timedelta(days=1)
    return tuple(last - timedelta(days=n) for n in reversed(range(days)))


class Prefolder:
    def __init__(
        self,
        queries: StatsQueries,
        sites: Callable[[], Awaitable[Sequence[Site]]],
        days: int,
        every_s: float,
        ready: Callable[[], bool] = lambda: True,
    ) -> None:
        """`ready`: whether a pass may run now; when not, the next is tried `every_s` later."""
        self._queries = queries
        self._sites = sites
        self._days = days
        self._every_s = every_s
        self._ready = ready

    async def run(self) -> None:
        """Until cancelled: a pass, then one every `every_s` seconds."""
        while True:
            try:
                if self._ready():
                    await self.once(datetime.now(UTC))
            except WarehouseUnavailable as exc:
                # The read path folds what is missing when ClickHouse is back.
                log.warning("prefold: skipped this pass: %s", exc.reason)
            await asyncio.sleep(self._every_s)

    async def once(self, now: datetime) -> int:
        """Each site's settled days folded; how many sites were looked at."""
        days = settled_days(now, self._days)
        sites = await self._sites()
        for site in sites:
            scope = TenantScope(
                tenant_id=site.tenant_id, subject="prefold", permissions=frozenset({"stats:read"})
            )
            await self._queries.fold_days(scope, site, days)
        return len(sites)
