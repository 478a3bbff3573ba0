"""Read path of the stats query: check → the site's goals if it needs them → compile → run → shape.

A query the rollups answer (pulse.stats.rollup_plan) is read from them, any other from raw events;
both answer in the same shape.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from datetime import UTC, date, datetime
from typing import Any, Protocol

from pulse.oltp.accounts import Site
from pulse.oltp.goals import Goal
from pulse.stats.breakdowns import Together, together
from pulse.stats.compile import compile_breakdowns, compile_query
from pulse.stats.conversions import counted_goals, uses_goals
from pulse.stats.live_visits import LiveCut, LiveVisits
from pulse.stats.query import StatsQuery, ValidQuery, check
from pulse.stats.query_result import QueryResult, shape
from pulse.stats.rollup_compile import certain, compile_ranking, compile_rollup, compile_together
from pulse.stats.rollup_plan import TOGETHER_FIGURES as ROLLUP_TOGETHER_FIGURES
from pulse.stats.rollup_plan import Planned, RollupPlan, plan
from pulse.stats.rollup_plan import together as rollups_together
from pulse.stats.service import SiteNotFound
from pulse.stats.visit_compile import (
    TOGETHER_FIGURES,
    compile_goals,
    compile_visit_breakdowns,
    compile_visits,
)
from pulse.stats.visit_days import FoldedDays
from pulse.stats.visit_plan import VisitPlan, visit_plan
from pulse.tenancy import TenantScope
from pulse.warehouse.reader import ScopedReader


class SiteGoals(Protocol):
    async def list(self, tenant_id: str, site_id: str) -> list[Goal]: ...


class StatsQueries:
    def __init__(
        self, reader: ScopedReader, goals: SiteGoals, rollups: bool = True, fold_cache_s: float = 10.0
    ) -> None:
        """`rollups` False reads every query from raw events (benchmarks compare the two);
        `fold_cache_s`: how long which past days are folded is believed (pulse.stats.visit_days)."""
        self._reader = reader
        self._goals = goals
        self._rollups = rollups
        self._folds = FoldedDays(reader, fold_cache_s)
        self._live = LiveVisits(reader, fold_cache_s)

    async def run(self, scope: TenantScope, site: Site, query: StatsQuery) -> QueryResult:
        """`site` comes from StatsService.site, which checked it is the scope's tenant's."""
        if site.tenant_id != scope.tenant_id:
            raise SiteNotFound(site.id)
        now = datetime.now(UTC)
        return await self._answer(scope, site, check(query, now, site.timezone), now)

    async def _answer(self, scope: TenantScope, site: Site, valid: ValidQuery, now: datetime) -> QueryResult:
        rollup = plan(valid, now) if self._rollups else None
        if rollup is not None:
            return shape(valid, await self._from_rollups(scope, site, valid, rollup), approximate=True)
        visits = visit_plan(valid, now) if self._rollups else None
        goals = await self._goals.list(scope.tenant_id, site.id) if uses_goals(valid) else []
        if visits is not None:
            folds = await self._folds.folded(scope, site.id, visits.closed)
            live = await self._live_cut(scope, site, visits, now)
            if valid.dimensions and valid.dimensions[0].kind == "goal":
                compiled = compile_goals(valid, site.id, folds, counted_goals(valid, goals), live)
            else:
                compiled = compile_visits(valid, site.id, folds, live)
            return shape(valid, await self._reader.select(scope, compiled.query, compiled.params))
        compiled = compile_query(valid, site.id, goals)
        return shape(valid, await self._reader.select(scope, compiled.query, compiled.params))

    async def fold_days(self, scope: TenantScope, site: Site, days: tuple[date, ...]) -> None:
        """The past UTC `days` folded ahead of the queries that read them (pulse.stats.prefold)."""
        if site.tenant_id != scope.tenant_id:
            raise SiteNotFound(site.id)
        if self._rollups:
            await self._folds.folded(scope, site.id, days)

    async def run_many(
        self, scope: TenantScope, site: Site, queries: Sequence[StatsQuery]
    ) -> list[QueryResult]:
        """Each query's result, in order, as `run` answers it; breakdowns that raw events answer
        are read together where they can be (pulse.stats.breakdowns)."""
        if site.tenant_id != scope.tenant_id:
            raise SiteNotFound(site.id)
        now = datetime.now(UTC)
        valid = [check(q, now, site.timezone) for q in queries]
        planned = [
            Planned(i, v, rollup) for i, v in enumerate(valid) if self._rollups and (rollup := plan(v, now))
        ]
        on_rollups = {p.position for p in planned}
        unplanned = [(i, v) for i, v in enumerate(valid) if i not in on_rollups]
        visits = {i: found for i, v in unplanned if self._rollups and (found := visit_plan(v, now))}
        rollup_groups = rollups_together(planned)
        groups = together([(i, v) for i, v in unplanned if i not in visits])
        visit_groups = together([(i, v) for i, v in unplanned if i in visits], visits=True)
        grouped = {m.position for g in [*groups, *visit_groups] for m in g.members}
        grouped |= {m.position for g in rollup_groups for m in g}
        alone = [i for i in range(len(queries)) if i not in grouped]
        read_rollups, read_together, read_visits, read_alone = await asyncio.gather(
            asyncio.gather(*(self._rollups_together(scope, site, g) for g in rollup_groups)),
            asyncio.gather(*(self._together(scope, site, g) for g in groups)),
            asyncio.gather(
                *(
                    self._visits_together(scope, site, g, visits[g.members[0].position], now)
                    for g in visit_groups
                )
            ),
            asyncio.gather(*(self._answer(scope, site, valid[i], now) for i in alone)),
        )
        results = dict(zip(alone, read_alone, strict=True))
        for answered in [*read_rollups, *read_together, *read_visits]:
            results |= answered
        return [results[i] for i in range(len(queries))]

    async def _rollups_together(
        self, scope: TenantScope, site: Site, group: list[Planned]
    ) -> dict[int, QueryResult]:
        compiled = compile_together(group, site.id)
        rows = await self._reader.select(scope, compiled.query, compiled.params)
        member = {m.plan.dimension: n for n, m in enumerate(group)}
        return _answers(
            [(m.position, m.query) for m in group],
            [(member[dimension], *row) for dimension, *row in rows],
            ROLLUP_TOGETHER_FIGURES[group[0].plan.table],
            lambda query: list(query.metrics[1:]),
            approximate=True,
        )

    async def _together(self, scope: TenantScope, site: Site, group: Together) -> dict[int, QueryResult]:
        compiled = compile_breakdowns(
            [m.dimension for m in group.members],
            [n for n, m in enumerate(group.members) if m.no_empty],
            group.shared,
            site.id,
        )
        rows = await self._reader.select(scope, compiled.query, compiled.params)
        # Its one figure after visitors is the members' second metric, visits or pageviews by kind.
        return _answers(_members(group), rows, ("extra",), lambda query: ["extra"][: len(query.metrics) - 1])

    async def _visits_together(
        self, scope: TenantScope, site: Site, group: Together, visits: VisitPlan, now: datetime
    ) -> dict[int, QueryResult]:
        folds = await self._folds.folded(scope, site.id, visits.closed)
        compiled = compile_visit_breakdowns(
            [m.dimension for m in group.members],
            [n for n, m in enumerate(group.members) if m.no_empty],
            group.shared,
            site.id,
            folds,
            await self._live_cut(scope, site, visits, now),
        )
        rows = await self._reader.select(scope, compiled.query, compiled.params)
        return _answers(_members(group), rows, TOGETHER_FIGURES, lambda query: list(query.metrics[1:]))

    async def _live_cut(
        self, scope: TenantScope, site: Site, visits: VisitPlan, now: datetime
    ) -> LiveCut | None:
        return await self._live.cut(scope, site.id, now) if self._rollups and visits.reaches_now else None

    async def _from_rollups(
        self, scope: TenantScope, site: Site, query: ValidQuery, rollup: RollupPlan
    ) -> Sequence[Sequence[Any]]:
        days = await self._folds.folded(scope, site.id, rollup.closed)
        if rollup.candidates is None:
            compiled = compile_rollup(query, rollup, site.id, days)
            return await self._reader.select(scope, compiled.query, compiled.params)
        ranking = compile_ranking(query, rollup, site.id, days)
        ranked = await self._reader.select(scope, ranking.query, ranking.params)
        candidates = [str(value) for value, _ in ranked[: rollup.candidates]]
        left_out = float(ranked[rollup.candidates][1]) if len(ranked) > rollup.candidates else 0.0
        compiled = compile_rollup(query, rollup, site.id, days, only=candidates)
        rows = await self._reader.select(scope, compiled.query, compiled.params)
        if not certain(query, rollup, rows, left_out):
            compiled = compile_rollup(query, rollup.unpruned(), site.id, days)
            rows = await self._reader.select(scope, compiled.query, compiled.params)
        return rows


def _members(group: Together) -> list[tuple[int, ValidQuery]]:
    return [(m.position, m.query) for m in group.members]


def _answers(
    members: Sequence[tuple[int, ValidQuery]],
    rows: Sequence[Sequence[Any]],
    figures: Sequence[str],
    picked: Callable[[ValidQuery], list[str]],
    approximate: bool = False,
) -> dict[int, QueryResult]:
    """Each member's (position, query) result from the rows of a read together: the member's index,
    value, visitors, then `figures`, of which each member shows `picked` after visitors."""
    by_member: dict[int, list[tuple[Any, Any, dict[str, Any]]]] = {n: [] for n in range(len(members))}
    for member, value, visitors, *extra in rows:
        by_member[int(member)].append((value, visitors, dict(zip(figures, extra, strict=True))))
    return {
        position: shape(
            query,
            [
                (value, visitors, *(found[f] for f in picked(query)))
                for value, visitors, found in by_member[n]
            ],
            approximate=approximate,
        )
        for n, (position, query) in enumerate(members)
    }
