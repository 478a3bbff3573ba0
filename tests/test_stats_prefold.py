"""The dashboard folds past days in the background, so that no page waits for a fold (pulse.stats.prefold)."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from datetime import UTC, date, datetime, timedelta
from typing import Any, cast

import msgspec

from pulse.oltp.accounts import Accounts, Site
from pulse.oltp.goals import Goals
from pulse.stats.prefold import Prefolder, settled_days
from pulse.stats.query import StatsQuery
from pulse.stats.query_service import StatsQueries
from pulse.tenancy import TenantScope
from pulse.warehouse.reader import ScopedQuery, ScopedReader, SharedDatabase
from stack import Stack
from test_stats_rollups import CARDS, DAYS, _seed


class CountingReader(ScopedReader):
    """Counts the folds of past days written: a page that finds its days folded writes none (today's
    visits that are over are folded as the day goes on, pulse.stats.live_visits)."""

    writes = 0

    async def write(self, scope: TenantScope, query: ScopedQuery, params: Mapping[str, Any]) -> None:
        if not query.name.startswith("visit_rows_live"):
            self.writes += 1
        await super().write(scope, query, params)


def test_settled_days_end_with_the_last_day_over_for_five_minutes() -> None:
    just_after = datetime(2026, 11, 22, 0, 3, tzinfo=UTC)
    assert settled_days(just_after, 3) == (date(2026, 11, 18), date(2026, 11, 19), date(2026, 11, 20))
    later = just_after + timedelta(minutes=3)
    assert settled_days(later, 3) == (date(2026, 11, 19), date(2026, 11, 20), date(2026, 11, 21))
    assert settled_days(later, 0) == ()


async def test_after_a_pass_a_filtered_page_reads_folds_without_writing_any(stack: Stack) -> None:
    seeded = await _seed(stack, "Prefold", 3_000)
    reader = CountingReader(seeded.warehouse, SharedDatabase(stack.settings.clickhouse_database))
    queries = StatsQueries(reader, Goals(stack.engine), fold_cache_s=0)

    async def sites() -> list[Site]:
        return [seeded.site]

    prefolder = Prefolder(queries, sites, days=DAYS + 2, every_s=300)
    assert await prefolder.once(datetime.now(UTC)) == 1
    folded = reader.writes
    assert folded > 0, "the past days were not folded"
    assert await prefolder.once(datetime.now(UTC)) == 1
    assert reader.writes == folded, "a second pass folded again"

    query = msgspec.convert(
        {"metrics": CARDS, "filters": [["country", "is_not", ["US"]]], "date_range": "7d"}, StatsQuery
    )
    fast = await queries.run(seeded.scope, seeded.site, query)
    assert reader.writes == folded, "the page folded a day the pass had folded"
    raw = await seeded.raw.run(seeded.scope, seeded.site, query)
    assert raw.results
    assert msgspec.to_builtins(fast) == msgspec.to_builtins(raw)


async def test_the_folder_looks_at_enabled_sites_only(stack: Stack) -> None:
    accounts = Accounts(stack.engine)
    tenant = await accounts.create_tenant("Prefold sites")
    kept = await accounts.create_site(tenant.id, "Kept", "kept.example")
    off = await accounts.create_site(tenant.id, "Off", "off.example")
    await accounts.set_disabled(tenant.id, off.id, True)
    enabled = {site.id for site in await accounts.enabled_sites()}
    assert kept.id in enabled
    assert off.id not in enabled


async def test_no_pass_runs_until_the_process_is_ready_for_one() -> None:
    asked: list[datetime] = []
    ready = False

    async def sites() -> list[Site]:
        asked.append(datetime.now(UTC))
        return []

    # No site is listed, so the queries are never used: a pass is only the listing here.
    prefolder = Prefolder(cast(StatsQueries, None), sites, days=3, every_s=0.01, ready=lambda: ready)
    running = asyncio.create_task(prefolder.run())
    try:
        await asyncio.sleep(0.2)
        assert asked == [], "a pass ran before the process was ready"
        ready = True
        await asyncio.sleep(0.2)
        assert asked, "no pass ran once the process was ready"
    finally:
        running.cancel()
