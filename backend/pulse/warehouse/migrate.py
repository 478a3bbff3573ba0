"""Applies migrations/clickhouse/NNNN_*.sql in order, once each, recorded in the database.

With a cluster configured, each statement is applied in its cluster form (warehouse/cluster.py).
"""

from __future__ import annotations

import re
from pathlib import Path

import msgspec
from clickhouse_connect.driver.client import Client

from pulse.warehouse.client import connect, create_database_ddl
from pulse.warehouse.cluster import Cluster, ClusterError, ClusterRenderer

_LEDGER = """
CREATE TABLE IF NOT EXISTS schema_migrations (name String, applied_at DateTime('UTC') DEFAULT now())
ENGINE = ReplacingMergeTree ORDER BY name
"""

# On a cluster the ledger is one table replicated to every server of every shard (its Keeper path
# has no shard), so `pulse migrate` run against any server knows what an earlier run applied to the
# whole cluster: the statements themselves ran ON CLUSTER. The shard in the replica name keeps
# replica names distinct where every shard numbers its replicas alike.
_CLUSTER_LEDGER = """
CREATE TABLE IF NOT EXISTS schema_migrations {on_cluster} (name String, applied_at DateTime('UTC') DEFAULT now())
ENGINE = ReplicatedReplacingMergeTree('/clickhouse/tables/{{database}}/schema_migrations', '{{shard}}-{{replica}}')
ORDER BY name
"""


class Migration(msgspec.Struct, frozen=True):
    name: str
    statements: list[str]


def migration_files(directory: Path) -> list[Path]:
    return sorted(p for p in directory.glob("*.sql") if re.match(r"^\d{4}_", p.name))


def statements(sql: str) -> list[str]:
    """Split on semicolons that end a line; the HTTP interface takes one statement per call."""
    body = "\n".join(line for line in sql.splitlines() if not line.lstrip().startswith("--"))
    return [s.strip() for s in re.split(r";\s*$", body, flags=re.MULTILINE) if s.strip()]


def ledger_ddl(cluster: Cluster | None = None) -> str:
    return _CLUSTER_LEDGER.format(on_cluster=cluster.on_cluster) if cluster else _LEDGER


def planned_migrations(directory: Path, cluster: Cluster | None = None) -> list[Migration]:
    """Every migration's statements as they are applied: the files' own, or their cluster form.

    All files are rendered, applied or not, because a statement's cluster form depends on what
    the earlier ones created.
    """
    files = migration_files(directory)
    if cluster is None:
        return [Migration(path.name, statements(path.read_text())) for path in files]
    renderer = ClusterRenderer(cluster)
    planned = []
    for path in files:
        rendered = []
        for statement in statements(path.read_text()):
            try:
                rendered.extend(renderer.render(statement))
            except ClusterError as exc:
                raise ClusterError(
                    f"{path.name}, for cluster {cluster.name}: {exc}, in:\n{statement}"
                ) from exc
        planned.append(Migration(path.name, rendered))
    return planned


def apply_clickhouse_migrations(client: Client, directory: Path, cluster: Cluster | None = None) -> list[str]:
    # Rendered first: a statement without a cluster form stops the run before anything is applied.
    planned = planned_migrations(directory, cluster)
    client.command(ledger_ddl(cluster))
    done = {row[0] for row in client.query("SELECT name FROM schema_migrations FINAL").result_rows}
    applied = []
    for migration in planned:
        if migration.name in done:
            continue
        for statement in migration.statements:
            client.command(statement)
        client.insert("schema_migrations", [[migration.name]], column_names=["name"])
        applied.append(migration.name)
    return applied


def apply_to_database(url: str, database: str, directory: Path, cluster: str = "") -> list[str]:
    """The same migrations in another database of the same server(s), created if missing: a tenant's
    own (`pulse tenant isolate`). Blocking, like the client; each database keeps its own ledger.

    The statements name their tables unqualified, so they run on a client whose default database
    is this one: each view then reads and writes this database's tables.
    """
    bootstrap = connect(url)
    try:
        bootstrap.command(create_database_ddl(database, cluster))
    finally:
        bootstrap.close()
    client = connect(url, database)
    try:
        return apply_clickhouse_migrations(client, directory, Cluster(cluster, database) if cluster else None)
    finally:
        client.close()
