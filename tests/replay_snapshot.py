"""Every projection of some tenants' events, finalized, for comparing before and after a replay.

Run as a script (`python replay_snapshot.py HOME TENANT...`) it prints the snapshot's repr, for
tests whose ClickHouse data path belongs to another process while it runs.
"""

from __future__ import annotations

import asyncio
import sys
from typing import Any

from pulse.settings import load_settings
from pulse.warehouse.client import Warehouse

_SNAPSHOT = {
    "events": "SELECT tenant_id, site_id, hex(event_id), ts, name, hostname, pathname, referrer, visitor_id, "
    "screen_width, props, engagement_ms, country, session_id, session_start, browser, os, device, source, "
    "channel, utm_campaign FROM events WHERE {scope} ORDER BY tenant_id, site_id, event_id",
    **{
        f"stats_{grain}": f"SELECT tenant_id, site_id, bucket, sum(pageviews), sum(events), uniqMerge(visitors) "  # noqa: S608
        f"FROM stats_{grain} WHERE {{scope}} GROUP BY tenant_id, site_id, bucket ORDER BY ALL"
        for grain in ("minute", "hour", "day")
    },
    **{
        f"totals_{grain}": "SELECT tenant_id, site_id, bucket, sum(pageviews), sum(events), "  # noqa: S608
        f"uniqCombinedMerge(16)(visitors), uniqCombinedMerge(16)(visits) FROM totals_{grain} WHERE {{scope}} "
        "GROUP BY tenant_id, site_id, bucket ORDER BY ALL"
        for grain in ("hour", "day")
    },
    **{
        f"traffic_{grain}": "SELECT tenant_id, site_id, bucket, dimension, value, sum(pageviews), sum(events), "  # noqa: S608
        f"uniqCombinedMerge(13)(visitors), uniqCombinedMerge(13)(visits) FROM traffic_{grain} WHERE {{scope}} "
        "GROUP BY tenant_id, site_id, bucket, dimension, value ORDER BY ALL"
        for grain in ("hour", "day")
    },
    **{
        f"visits_{grain}": "SELECT tenant_id, site_id, bucket, dimension, value, sum(visits), "  # noqa: S608
        f"uniqCombinedMerge(13)(visitors) FROM visits_{grain} WHERE {{scope}} "
        "GROUP BY tenant_id, site_id, bucket, dimension, value ORDER BY ALL"
        for grain in ("hour", "day")
    },
    "day_versions": "SELECT tenant_id, site_id, day, sum(version), sum(pageviews), sum(events), sum(engagement_ms) "
    "FROM day_versions WHERE {scope} GROUP BY tenant_id, site_id, day ORDER BY ALL",
    "sessions": "SELECT tenant_id, site_id, session_start, session_id, any(visitor_id), max(last_seen), "
    "sum(pageviews), sum(events), sum(engagement_ms), argMinMerge(entry_page), argMaxMerge(exit_page), "
    "argMinMerge(source), argMinMerge(channel), argMinMerge(country), argMinMerge(device), "
    "argMinMerge(browser) FROM sessions WHERE {scope} "
    "GROUP BY tenant_id, site_id, session_start, session_id ORDER BY ALL",
}


async def snapshot(warehouse: Warehouse, tenant_ids: list[str]) -> dict[str, list[Any]]:
    snapshot = {}
    for table, sql in _SNAPSHOT.items():
        query = sql.format(scope="tenant_id IN {t:Array(String)}")
        result = await warehouse.run(warehouse.client.query, query, parameters={"t": tenant_ids})
        snapshot[table] = [tuple(row) for row in result.result_rows]
    return snapshot


def main(home: str, tenant_ids: list[str]) -> None:
    settings = load_settings({"PULSE_HOME": home})
    warehouse = Warehouse(settings.effective_clickhouse_url, settings.clickhouse_database)
    try:
        print(repr(asyncio.run(snapshot(warehouse, tenant_ids))))
    finally:
        warehouse.close()


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2:])
