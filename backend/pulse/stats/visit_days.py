"""Visits folded per UTC day (migration 0010's visit_days), kept by the read path itself.

Bounce rate, visit duration and exit pages need each visit whole, which no view sees. A UTC day
that is over holds only whole visits (they end at midnight UTC), so its visits are folded once:
every visit (dimension '') with its bounce and duration, and the visits by exit page, with a
sketch of their visitors; and every visit as a row of visit_rows (pulse.stats.visit_rows), marked
done by a 'visit_rows' row summing them. A fold is used while it matches day_versions, the day's events as their
view last summed them: its version, and the pageviews, events and engagement of the sessions it
was folded from. An event arriving late, a replay, or a fold made while the sessions table was
still behind its events leaves the day unmatched, and it is folded again when next asked for.

Writing is the read path's: the first query over a day folds it (from the sessions table and
from raw events, about as costly as reading the day visit by visit twice), later ones read the
folds. Two readers
folding the same day write the same rows, which the table's ReplacingMergeTree collapses and
reads FINAL see once.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import date

from pulse.stats.recent import Recent
from pulse.stats.visit_rows import ROW_COLUMNS, folded
from pulse.tenancy import TenantScope
from pulse.warehouse.reader import ScopedQuery, ScopedReader

_SCOPE = "tenant_id = {tenant_id:String} AND site_id = {site_id:String}"

# Per day asked for: its version, and whether visit_days holds a fold of it that matches, both
# its '' row (the sessions folded) and its 'visit_rows' marker (visit_rows written).
VERSIONS = ScopedQuery(
    "visit_days_versions",
    f"""
SELECT v.day, v.version, f.day = v.day AND f.markers = 2
FROM (
    SELECT day, sum(version) AS version, sum(pageviews) AS pageviews, sum(events) AS events,
        sum(engagement_ms) AS engagement_ms
    FROM {{db:Identifier}}.day_versions
    WHERE {_SCOPE} AND day IN {{days:Array(Date)}}
    GROUP BY day
) AS v
LEFT JOIN (
    SELECT day, version, pageviews, events, engagement_ms, count() AS markers
    FROM {{db:Identifier}}.visit_days FINAL
    WHERE {_SCOPE} AND dimension IN ('', 'visit_rows') AND value = '' AND day IN {{days:Array(Date)}}
    GROUP BY day, version, pageviews, events, engagement_ms
) AS f
ON f.day = v.day AND f.version = v.version AND f.pageviews = v.pageviews AND f.events = v.events
    AND f.engagement_ms = v.engagement_ms
""",  # noqa: S608 - fixed text
)

_INTO_VISIT_DAYS = """INSERT INTO {db:Identifier}.visit_days
    (tenant_id, site_id, dimension, value, day, version, visits, bounces, duration_ms, pageviews, events,
     engagement_ms, visitors)
SELECT
    tenant_id,
    site_id,
"""

# The days' sessions folded, each day stamped with the version read before folding: rows that
# arrive meanwhile make the day's version move on, so the fold is not used and is made again.
FOLD = ScopedQuery(
    "visit_days_fold",
    f"""
{_INTO_VISIT_DAYS}    kept.1 AS dimension,
    kept.2 AS value,
    day,
    transform(day, {{days:Array(Date)}}, {{versions:Array(UInt64)}}, toUInt64(0)),
    countIf(events > 0),
    countIf(events > 0 AND pageviews <= 1),
    sumIf(duration_ms, events > 0),
    if(dimension = '', sum(pageviews), 0),
    if(dimension = '', sum(events), 0),
    if(dimension = '', sum(engagement_ms), 0),
    uniqCombinedStateIf(13)(visitor_id, events > 0)
FROM (
    SELECT
        tenant_id,
        site_id,
        toDate(session_start) AS day,
        visitor_id,
        pageviews,
        events,
        engagement_ms,
        dateDiff('millisecond', session_start, last_seen) AS duration_ms,
        finalizeAggregation(exit_page) AS exit
    FROM {{db:Identifier}}.sessions FINAL
    WHERE {_SCOPE} AND toDate(session_start) IN {{days:Array(Date)}}
)
ARRAY JOIN [('', ''), ('exit_page', exit)] AS kept
GROUP BY tenant_id, site_id, dimension, value, day
HAVING dimension = '' OR countIf(events > 0) > 0
""",  # noqa: S608 - fixed text
)


# One day's visits as rows, from raw events (a visit ends at midnight UTC, so each is whole), stamped
# with the day's version read before folding, like FOLD.
FOLD_ROWS = ScopedQuery(
    "visit_rows_fold",
    f"""
INSERT INTO {{db:Identifier}}.visit_rows
    (tenant_id, site_id, day, version, session_id, {", ".join(ROW_COLUMNS)}, retention_days)
SELECT
    tenant_id,
    site_id,
    toDate(ts) AS day,
    {{version:UInt64}},
    session_id,
    {", ".join(folded(ROW_COLUMNS))},
    max(retention_days)
FROM {{db:Identifier}}.events
WHERE {_SCOPE} AND toDate(ts) = {{day:Date}} AND session_id != 0
GROUP BY tenant_id, site_id, day, session_id
""",  # noqa: S608 - names from fixed tables
)

# The days' visit_rows summed into visit_days' 'visit_rows' marker, which VERSIONS compares with
# day_versions: a fold cut short, or made while events still arrived, leaves it unmatched.
MARK_ROWS = ScopedQuery(
    "visit_rows_mark",
    f"""
{_INTO_VISIT_DAYS}    'visit_rows',
    '',
    day,
    version,
    countIf(events > 0),
    countIf(events > 0 AND pageviews <= 1),
    sumIf(duration_ms, events > 0),
    sum(pageviews),
    sum(events),
    sum(engagement_ms),
    uniqCombinedStateIf(13)(visitor_id, events > 0)
FROM {{db:Identifier}}.visit_rows FINAL
WHERE {_SCOPE} AND day IN {{days:Array(Date)}}
    AND version = transform(day, {{days:Array(Date)}}, {{versions:Array(UInt64)}}, toUInt64(0))
GROUP BY tenant_id, site_id, day, version
""",
)


class FoldedDays:
    """Which days' folds are in use, as last checked: a page asks for the same days several times
    (its cards, its exit pages), and a past day changes only with a late event or a replay, which
    a page then shows up to `cache_s` later."""

    def __init__(self, reader: ScopedReader, cache_s: float = 10.0) -> None:
        self._reader = reader
        self._checked: Recent[tuple[str, str, tuple[date, ...]], dict[date, int]] = Recent(cache_s)

    async def folded(self, scope: TenantScope, site_id: str, closed: tuple[date, ...]) -> dict[date, int]:
        """The closed days (past UTC days) that have a fold in use, by version; days missing one are
        folded first."""
        if not closed:
            return {}
        return await self._checked.get(
            (scope.tenant_id, site_id, closed), lambda: self._fold(scope, site_id, closed)
        )

    async def _fold(self, scope: TenantScope, site_id: str, closed: Sequence[date]) -> dict[date, int]:
        versions = await _versions(self._reader, scope, site_id, closed)
        stale = {day: version for day, (version, ok) in versions.items() if not ok}
        if stale:
            params = {"site_id": site_id, "days": list(stale), "versions": list(stale.values())}
            # A day at a time: a fold holds every visit of what it folds in memory.
            for day, version in stale.items():
                await self._reader.write(
                    scope, FOLD_ROWS, {"site_id": site_id, "day": day, "version": version}
                )
            await self._reader.write(scope, MARK_ROWS, params)
            await self._reader.write(scope, FOLD, params)
            versions = await _versions(self._reader, scope, site_id, closed)
        return {day: version for day, (version, ok) in versions.items() if ok}


async def _versions(
    reader: ScopedReader, scope: TenantScope, site_id: str, days: Sequence[date]
) -> Mapping[date, tuple[int, bool]]:
    rows = await reader.select(scope, VERSIONS, {"site_id": site_id, "days": list(days)})
    return {day: (int(version), bool(ok)) for day, version, ok in rows}
