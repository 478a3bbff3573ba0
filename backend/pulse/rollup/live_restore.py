"""Rebuild the live window in Redis from ClickHouse when a worker starts.

Redis may have missed the updates of a worker that died between its ClickHouse insert and its
Redis write, or counted a batch that a new worker will not read again. ClickHouse is right by
construction, so the live window is set from it and the counters converge.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

from pulse.live.keys import ACTIVE_WINDOW_S, SECONDS_TTL_S
from pulse.live.writer import ENGAGEMENT, LiveWriter
from pulse.warehouse.client import Warehouse

_SECONDS = """
SELECT tenant_id, site_id, toUInt32(toUnixTimestamp(ts)) AS second, count()
FROM {db:Identifier}.events
WHERE ts >= now() - toIntervalSecond({window:UInt32}) AND name != {engagement:String}
GROUP BY tenant_id, site_id, second
"""

_ACTIVE = """
SELECT tenant_id, site_id, visitor_id, toUInt64(toUnixTimestamp64Milli(max(ts)))
FROM {db:Identifier}.events
WHERE ts >= now() - toIntervalSecond({window:UInt32})
GROUP BY tenant_id, site_id, visitor_id
"""


async def restore_live_window(
    warehouse: Warehouse, live: LiveWriter, databases: Sequence[str] = ()
) -> tuple[int, int]:
    """From the warehouse's database and `databases` (tenants' own); returns how many per-second
    counters and active visitors were set.

    Summed across databases: a tenant moved to its own minutes ago has its last minutes in both.
    """
    seconds: Counter[tuple[str, str, int]] = Counter()
    active: dict[tuple[str, str, int], int] = {}
    for database in (warehouse.database, *databases):
        counted = await warehouse.run(
            warehouse.client.query,
            _SECONDS,
            parameters={"window": SECONDS_TTL_S, "engagement": ENGAGEMENT, "db": database},
        )
        for tenant, site, second, n in counted.result_rows:
            seconds[(str(tenant), str(site), int(second))] += int(n)
        seen = await warehouse.run(
            warehouse.client.query, _ACTIVE, parameters={"window": ACTIVE_WINDOW_S, "db": database}
        )
        for tenant, site, visitor, ms in seen.result_rows:
            key = (str(tenant), str(site), int(visitor))
            active[key] = max(active.get(key, 0), int(ms))
    counters = [(*key, n) for key, n in seconds.items()]
    visitors = [(*key, ms) for key, ms in active.items()]
    await live.restore(counters, visitors)
    return len(counters), len(visitors)
