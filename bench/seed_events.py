"""Seed a Pulse home with one site's last 30 days of events, generated inside chDB.

    uv run python bench/seed_events.py [--events 10000000] [--home DIR] [--timezone UTC]

`pulse migrate` creates the schema, a tenant with an owner and one site are created in the OLTP
store, then one INSERT … SELECT FROM numbers(…) (pulse.loadgen.history) writes the events into
`events`, so the materialized views fill every rollup as the rollup worker's inserts do. Parts are
then merged (OPTIMIZE … FINAL), as a month-old table is in production. Both steps are timed.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import msgspec

from pulse.loadgen.history import History, insert_sql
from pulse.migrate import migrate
from pulse.oltp.accounts import Accounts
from pulse.oltp.db import create_engine
from pulse.settings import Settings, load_settings
from pulse.warehouse.client import Warehouse

EVENTS = int(os.environ.get("BENCH_EVENTS", "10000000"))
EMAIL = "bench@example.com"
PASSWORD = "correct horse battery"  # noqa: S105 - a throwaway home's bench owner
HOSTNAME = "bench.example"
# Blocks of a million rows: each view then writes one part per million events, not per 65,536.
INSERT_SETTINGS = {
    "max_block_size": 1 << 20,
    "min_insert_block_size_rows": 1 << 20,
    "min_insert_block_size_bytes": 0,
}
# Merged so reads see few parts: every table the views fill, and events itself.
TABLES = (
    "events",
    "stats_minute",
    "stats_hour",
    "stats_day",
    "sessions",
    "totals_hour",
    "totals_day",
    "traffic_hour",
    "traffic_day",
    "visits_hour",
    "visits_day",
    "day_versions",
)


class Seeded(msgspec.Struct, frozen=True):
    home: str
    tenant_id: str
    site_id: str
    timezone: str
    email: str
    password: str
    events: int
    end: datetime
    insert_s: float
    merge_s: float


def settings_for(home: Path) -> Settings:
    return load_settings({"PULSE_HOME": str(home)})


async def _site(settings: Settings, timezone: str) -> tuple[str, str]:
    engine = create_engine(settings.effective_database_url)
    try:
        accounts = Accounts(engine)
        tenant = await accounts.create_tenant("Bench")
        await accounts.create_user(EMAIL, PASSWORD, tenant.id, "owner")
        site = await accounts.create_site(tenant.id, "Bench", HOSTNAME, timezone=timezone)
    finally:
        await engine.dispose()
    return tenant.id, site.id


def seed(home: Path, events: int, timezone: str = "UTC") -> Seeded:
    """Migrates `home`, creates the site, and fills it; the chDB path is closed again on return."""
    settings = settings_for(home)
    asyncio.run(migrate(settings))
    tenant_id, site_id = asyncio.run(_site(settings, timezone))
    history = History(
        tenant_id=tenant_id, site_id=site_id, hostname=HOSTNAME, events=events, end=datetime.now(UTC)
    )
    sql, params = insert_sql(history)
    warehouse = Warehouse(settings.effective_clickhouse_url, settings.clickhouse_database)
    try:
        started = time.perf_counter()
        warehouse.client.command(sql, parameters=params, settings=INSERT_SETTINGS)
        inserted = time.perf_counter()
        for table in TABLES:
            warehouse.client.command(f"OPTIMIZE TABLE {table} FINAL")
        merged = time.perf_counter()
        stored = warehouse.client.query(
            "SELECT count() FROM events WHERE site_id = {s:String}", parameters={"s": site_id}
        ).result_rows[0][0]
    finally:
        warehouse.close()
    if stored != events:
        raise SystemExit(f"seeded {stored} events, expected {events}")
    return Seeded(
        home=str(home),
        tenant_id=tenant_id,
        site_id=site_id,
        timezone=timezone,
        email=EMAIL,
        password=PASSWORD,
        events=events,
        end=history.end,
        insert_s=inserted - started,
        merge_s=merged - inserted,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=EVENTS)
    parser.add_argument("--home", type=Path, default=None, help="a new directory (default: a temporary one)")
    parser.add_argument("--timezone", default="UTC", help="the site's timezone")
    args = parser.parse_args()
    home = args.home or Path(tempfile.mkdtemp(prefix="pulse-seed-"))
    seeded = seed(home, args.events, args.timezone)
    print(
        f"seeded {seeded.events:,} events into {seeded.home} (site {seeded.site_id}, {seeded.timezone}): "
        f"insert {seeded.insert_s:.1f} s ({seeded.events / seeded.insert_s:,.0f} events/s), "
        f"merge {seeded.merge_s:.1f} s"
    )
    print(msgspec.json.encode(seeded).decode())


if __name__ == "__main__":
    main()
