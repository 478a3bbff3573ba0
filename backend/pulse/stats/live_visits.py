"""Today's visits that are over, folded as the UTC day goes on (migration 0013's visit_rows_live).

A visit with no event for 30 minutes gets no more: the next event opens another (pulse.rollup.sessions).
At a cutoff, every visit of the day whose last event is over 30 minutes before it is therefore whole,
as far as the events that arrived by then go. A filtered overview reads today's visits as rows
(pulse.stats.visit_compile): those folded here, and from raw events only the visits with an event
since the cutoff's 30 minutes before, instead of folding every visit of the day for each query.

The cutoff moves every STEP, LAG behind the clock so that the events before it have arrived. Each
fold adds the visits that ended since the last one. A mark records each fold that completed, with a
fingerprint of the day's events before its visits' end (`settled`), summed as day_versions sums them;
an event that arrives later but belongs before it changes the fingerprint, and the day's folds begin
again in a new generation. The fingerprint is read before folding, so events arriving meanwhile make
the mark unmatched too. Folds are the read path's, like visit_days': the first query after the cutoff
moves makes one; two readers folding at once write the same rows, which reads FINAL see once.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import msgspec

from pulse.stats.recent import Recent
from pulse.stats.visit_rows import ROW_COLUMNS, folded
from pulse.tenancy import TenantScope
from pulse.warehouse.reader import ScopedQuery, ScopedReader

# A visit ends after this long without events (pulse.rollup.sessions.SESSION_GAP_MS).
GAP = timedelta(minutes=30)
STEP = timedelta(minutes=5)
LAG = timedelta(minutes=5)

_SCOPE = "tenant_id = {tenant_id:String} AND site_id = {site_id:String}"


class LiveCut(msgspec.Struct, frozen=True):
    """Today's folded visits to read: those of `generation` folded up to `cutoff`, which are the
    visits whose last event is before `settled`; the others are read from raw events."""

    day: date
    generation: int
    cutoff: datetime

    @property
    def settled(self) -> datetime:
        return self.cutoff - GAP


_MARK = ScopedQuery(
    "visit_rows_live_mark",
    f"""
SELECT generation, cutoff, fingerprint
FROM {{db:Identifier}}.visit_rows_live_marks FINAL
WHERE {_SCOPE} AND day = {{day:Date}}
ORDER BY generation DESC, cutoff DESC
LIMIT 1
""",  # noqa: S608 - fixed text
)

_FINGERPRINT = ScopedQuery(
    "visit_rows_live_fingerprint",
    f"""
SELECT sum(cityHash64(event_id, session_id, ts, name))
FROM {{db:Identifier}}.events
WHERE {_SCOPE} AND toDate(ts) = {{day:Date}} AND ts < {{settled:DateTime64(3, 'UTC')}} AND session_id != 0
""",  # noqa: S608 - fixed text
)

# The visits of the day whose last event is in [since, settled): read up to the cutoff, a visit that
# went on has an event after `settled` (its next came within GAP), and is left out.
_FOLD = ScopedQuery(
    "visit_rows_live_fold",
    f"""
INSERT INTO {{db:Identifier}}.visit_rows_live
    (tenant_id, site_id, day, generation, cutoff, session_id, {", ".join(ROW_COLUMNS)})
SELECT
    tenant_id,
    site_id,
    toDate(ts) AS day,
    {{generation:UInt64}},
    {{cutoff:DateTime64(3, 'UTC')}},
    session_id,
    {", ".join(folded(ROW_COLUMNS))}
FROM {{db:Identifier}}.events
WHERE {_SCOPE} AND toDate(ts) = {{day:Date}} AND ts < {{cutoff:DateTime64(3, 'UTC')}} AND session_id != 0
    AND session_id IN (
        SELECT session_id
        FROM {{db:Identifier}}.events
        WHERE {_SCOPE} AND toDate(ts) = {{day:Date}}
            AND ts >= {{since:DateTime64(3, 'UTC')}} AND ts < {{settled:DateTime64(3, 'UTC')}}
    )
GROUP BY tenant_id, site_id, day, session_id
HAVING max(ts) >= {{since:DateTime64(3, 'UTC')}} AND max(ts) < {{settled:DateTime64(3, 'UTC')}}
""",  # noqa: S608 - names from fixed tables
)

_MARK_FOLD = ScopedQuery(
    "visit_rows_live_mark_fold",
    """
INSERT INTO {db:Identifier}.visit_rows_live_marks (tenant_id, site_id, day, generation, cutoff, fingerprint)
SELECT {tenant_id:String} AS tenant_id, {site_id:String}, {day:Date}, {generation:UInt64},
    {cutoff:DateTime64(3, 'UTC')}, {fingerprint:UInt64}
WHERE tenant_id = {tenant_id:String}
""",
)


def _midnight(day: date) -> datetime:
    return datetime(day.year, day.month, day.day, tzinfo=UTC)


def cutoff_at(now: datetime) -> datetime:
    """The cutoff in use at `now`: LAG behind it, on a STEP."""
    epoch = datetime(1970, 1, 1, tzinfo=UTC)
    return epoch + (now - LAG - epoch) // STEP * STEP


class LiveVisits:
    """Today's cut as last checked, for `cache_s`: a page's queries ask for it several times."""

    def __init__(self, reader: ScopedReader, cache_s: float = 10.0) -> None:
        self._reader = reader
        self._checked: Recent[tuple[str, str, datetime], LiveCut | None] = Recent(cache_s)

    async def cut(self, scope: TenantScope, site_id: str, now: datetime) -> LiveCut | None:
        """Today's folded visits, folded up to the cutoff first where they are behind it; None
        while no visit of the day can be over yet."""
        cutoff = cutoff_at(now)
        day = now.date()
        if cutoff - GAP <= _midnight(day):
            return None
        return await self._checked.get(
            (scope.tenant_id, site_id, cutoff), lambda: self._made(scope, site_id, day, cutoff)
        )

    async def _made(self, scope: TenantScope, site_id: str, day: date, cutoff: datetime) -> LiveCut:
        params = {"site_id": site_id, "day": day}
        rows = await self._reader.select(scope, _MARK, params)
        if rows:
            generation, marked, fingerprint = int(rows[0][0]), rows[0][1].replace(tzinfo=UTC), int(rows[0][2])
            whole = await self._fingerprint(scope, site_id, day, marked - GAP) == fingerprint
            if whole and marked >= cutoff:
                return LiveCut(day=day, generation=generation, cutoff=marked)
            if whole:
                return await self._fold(scope, site_id, LiveCut(day, generation, cutoff), marked - GAP)
            return await self._fold(scope, site_id, LiveCut(day, generation + 1, cutoff), _midnight(day))
        return await self._fold(scope, site_id, LiveCut(day, 1, cutoff), _midnight(day))

    async def _fold(self, scope: TenantScope, site_id: str, cut: LiveCut, since: datetime) -> LiveCut:
        """The visits that ended in [since, cut.settled) added to the cut's generation, then marked."""
        fingerprint = await self._fingerprint(scope, site_id, cut.day, cut.settled)
        params = {
            "site_id": site_id,
            "day": cut.day,
            "generation": cut.generation,
            "cutoff": cut.cutoff,
            "since": since,
            "settled": cut.settled,
        }
        await self._reader.write(scope, _FOLD, params)
        await self._reader.write(scope, _MARK_FOLD, {**params, "fingerprint": fingerprint})
        return cut

    async def _fingerprint(self, scope: TenantScope, site_id: str, day: date, settled: datetime) -> int:
        rows = await self._reader.select(
            scope, _FINGERPRINT, {"site_id": site_id, "day": day, "settled": settled}
        )
        return int(rows[0][0]) if rows else 0
