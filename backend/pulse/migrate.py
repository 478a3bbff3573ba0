"""`pulse migrate`: ClickHouse and OLTP schema, each from its own folder of numbered SQL files."""

from __future__ import annotations

import msgspec

from pulse.oltp.accounts import Accounts
from pulse.oltp.db import create_engine
from pulse.oltp.migrate import apply_oltp_migrations
from pulse.settings import Settings
from pulse.warehouse.client import Warehouse, create_database_ddl
from pulse.warehouse.cluster import Cluster
from pulse.warehouse.migrate import (
    apply_clickhouse_migrations,
    apply_to_database,
    ledger_ddl,
    planned_migrations,
)


class Applied(msgspec.Struct, frozen=True):
    clickhouse: list[str]
    oltp: list[str]
    # Tenant database (`pulse tenant isolate`) → the ClickHouse migrations applied to it now.
    dedicated: dict[str, list[str]] = msgspec.field(default_factory=dict)


def clickhouse_cluster(settings: Settings) -> Cluster | None:
    if not settings.clickhouse_cluster:
        return None
    return Cluster(settings.clickhouse_cluster, settings.clickhouse_database)


def clickhouse_script(settings: Settings) -> str:
    """All the ClickHouse DDL `pulse migrate` runs for this configuration, as one script to review.

    Every migration is listed, applied or not; `pulse migrate` runs those its ledger lacks.
    """
    cluster = clickhouse_cluster(settings)
    parts = [
        f"-- ClickHouse schema for {f'cluster {cluster.name}' if cluster else 'a single server'}",
        f"{create_database_ddl(settings.clickhouse_database, settings.clickhouse_cluster)};",
        f"-- the ledger of applied migrations\n{ledger_ddl(cluster).strip()};",
    ]
    for migration in planned_migrations(settings.migrations_dir / "clickhouse", cluster):
        parts.append(f"-- {migration.name}\n" + "\n\n".join(f"{s};" for s in migration.statements))
    return "\n\n".join(parts) + "\n"


async def migrate(settings: Settings) -> Applied:
    cluster = clickhouse_cluster(settings)
    warehouse = Warehouse(
        settings.effective_clickhouse_url, settings.clickhouse_database, settings.clickhouse_cluster
    )
    engine = create_engine(settings.effective_database_url)
    try:
        clickhouse = await warehouse.run(
            apply_clickhouse_migrations,
            warehouse.client,
            settings.migrations_dir / "clickhouse",
            cluster,
        )
        oltp = await apply_oltp_migrations(engine, settings.migrations_dir / "oltp")
        # Tenants' own databases follow the shared one's schema.
        dedicated = {
            database: await warehouse.run(
                apply_to_database,
                settings.effective_clickhouse_url,
                database,
                settings.migrations_dir / "clickhouse",
                settings.clickhouse_cluster,
            )
            for database in sorted(set((await Accounts(engine).clickhouse_databases()).values()))
        }
    finally:
        warehouse.close()
        await engine.dispose()
    return Applied(clickhouse=clickhouse, oltp=oltp, dedicated=dedicated)
