"""Rebuild the live window in Redis from ClickHouse when a worker starts.

Redis may have missed the updates of a worker that died between its ClickHouse insert and its
Redis write, or counted a batch that a new worker will not read again. ClickHouse is right by
construction, so the live window is set from it and the counters converge.
"""

from __future__ import annotations

from pulse.live.keys import ACTIVE_WINDOW_S, SECONDS_TTL_S
from pulse.live.writer import ENGAGEMENT, LiveWriter
from pulse.warehouse.client import Warehouse

_SECONDS = """
SELECT tenant_id, site_id, toUInt32(toUnixTimestamp(ts)) AS second, count()
FROM events
WHERE ts >= now() - toIntervalSecond({window:UInt32}) AND name != {engagement:String}
GROUP BY tenant_id, site_id, second
"""

_ACTIVE = """
SELECT tenant_id, site_id, visitor_id, toUInt64(toUnixTimestamp64Milli(max(ts)))
FROM events
WHERE ts >= now() - toIntervalSecond({window:UInt32})
GROUP BY tenant_id, site_id, visitor_id
"""


async def restore_live_window(warehouse: Warehouse, live: LiveWriter) -> tuple[int, int]:
    """Returns how many per-second counters and active visitors were set."""
    seconds = await warehouse.run(
        warehouse.client.query, _SECONDS, parameters={"window": SECONDS_TTL_S, "engagement": ENGAGEMENT}
    )
    active = await warehouse.run(warehouse.client.query, _ACTIVE, parameters={"window": ACTIVE_WINDOW_S})
    counters = [(str(t), str(s), int(second), int(n)) for t, s, second, n in seconds.result_rows]
    visitors = [(str(t), str(s), int(visitor), int(ms)) for t, s, visitor, ms in active.result_rows]
    await live.restore(counters, visitors)
    return len(counters), len(visitors)
