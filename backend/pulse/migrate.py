"""`pulse migrate`: ClickHouse and OLTP schema, each from its own folder of numbered SQL files."""

from __future__ import annotations

import msgspec

from pulse.oltp.db import create_engine
from pulse.oltp.migrate import apply_oltp_migrations
from pulse.settings import Settings
from pulse.warehouse.client import Warehouse
from pulse.warehouse.migrate import apply_clickhouse_migrations


class Applied(msgspec.Struct, frozen=True):
    clickhouse: list[str]
    oltp: list[str]


async def migrate(settings: Settings) -> Applied:
    warehouse = Warehouse(settings.effective_clickhouse_url, settings.clickhouse_database)
    try:
        clickhouse = await warehouse.run(
            apply_clickhouse_migrations, warehouse.client, settings.migrations_dir / "clickhouse"
        )
    finally:
        warehouse.close()
    engine = create_engine(settings.effective_database_url)
    try:
        oltp = await apply_oltp_migrations(engine, settings.migrations_dir / "oltp")
    finally:
        await engine.dispose()
    return Applied(clickhouse=clickhouse, oltp=oltp)
