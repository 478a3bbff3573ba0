"""Named read queries over the rollups; one per grain because a table name cannot be bound."""

from __future__ import annotations

from pulse.stats.periods import Grain
from pulse.warehouse.reader import ScopedQuery

_RANGE = """
WHERE tenant_id = {tenant_id:String}
  AND site_id = {site_id:String}
  AND bucket >= {start:DateTime('UTC')}
  AND bucket < {end:DateTime('UTC')}
"""


def _aggregate(grain: Grain) -> ScopedQuery:
    return ScopedQuery(
        f"aggregate_{grain}",
        # The table name comes from GRAINS, never from a request; values are bound server-side.
        f"SELECT sum(pageviews), sum(events), uniqMerge(visitors) FROM {{db:Identifier}}.stats_{grain} {_RANGE}",  # noqa: S608
    )


def _timeseries(grain: Grain) -> ScopedQuery:
    return ScopedQuery(
        f"timeseries_{grain}",
        f"SELECT bucket, sum(pageviews), sum(events), uniqMerge(visitors) FROM {{db:Identifier}}.stats_{grain} {_RANGE}"  # noqa: S608
        " GROUP BY bucket ORDER BY bucket",
    )


GRAINS: tuple[Grain, ...] = ("minute", "hour", "day")
AGGREGATE = {grain: _aggregate(grain) for grain in GRAINS}
TIMESERIES = {grain: _timeseries(grain) for grain in GRAINS}

# Whether the site has counted anything ever: the day rollup is kept for good (raw events are not),
# and its first granule answers, so this stays cheap however much the site has.
ANY_EVENT = ScopedQuery(
    "any_event",
    "SELECT 1 FROM {db:Identifier}.stats_day"
    " WHERE tenant_id = {tenant_id:String} AND site_id = {site_id:String} LIMIT 1",
)

# Sessions that started in the period, each folded from its rows first: exact for any range.
SESSIONS = ScopedQuery(
    "sessions",
    """
SELECT count(), countIf(pageviews <= 1), avg(duration_s)
FROM (
    SELECT
        session_id,
        sum(pageviews) AS pageviews,
        dateDiff('millisecond', min(session_start), max(last_seen)) / 1000 AS duration_s
    FROM {db:Identifier}.sessions
    WHERE tenant_id = {tenant_id:String}
      AND site_id = {site_id:String}
      AND session_start >= {start:DateTime('UTC')}
      AND session_start < {end:DateTime('UTC')}
    GROUP BY session_id
)
""",
)

# The live layer's figures read from raw events, for when Redis is down: the active window and
# the last minutes are small ranges of the newest rows. Engagement pings keep a visitor active
# but are not events (pulse.live.writer).
LIVE_VISITORS = ScopedQuery(
    "live_visitors",
    """
SELECT uniqExact(visitor_id)
FROM {db:Identifier}.events
WHERE tenant_id = {tenant_id:String}
  AND site_id = {site_id:String}
  AND ts >= {since:DateTime64(3, 'UTC')}
""",
)

LIVE_SECONDS = ScopedQuery(
    "live_seconds",
    """
SELECT toUnixTimestamp(ts) AS second, count()
FROM {db:Identifier}.events
WHERE tenant_id = {tenant_id:String}
  AND site_id = {site_id:String}
  AND ts >= {since:DateTime64(3, 'UTC')}
  AND name != 'engagement'
GROUP BY second
""",
)

# The live view's stream when Redis holds no list of the latest events (it was down or lost
# them): the newest rows of the last day, newest first.
LIVE_RECENT = ScopedQuery(
    "live_recent",
    """
SELECT toUnixTimestamp64Milli(ts), name, pathname, source, country, device, browser
FROM {db:Identifier}.events
WHERE tenant_id = {tenant_id:String}
  AND site_id = {site_id:String}
  AND ts >= {since:DateTime64(3, 'UTC')}
  AND name != 'engagement'
ORDER BY ts DESC
LIMIT {limit:UInt32}
""",
)
