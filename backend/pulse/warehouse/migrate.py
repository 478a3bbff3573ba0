"""Applies migrations/clickhouse/NNNN_*.sql in order, once each, recorded in the database."""

from __future__ import annotations

import re
from pathlib import Path

from clickhouse_connect.driver.client import Client

_LEDGER = """
CREATE TABLE IF NOT EXISTS schema_migrations (name String, applied_at DateTime('UTC') DEFAULT now())
ENGINE = ReplacingMergeTree ORDER BY name
"""


def migration_files(directory: Path) -> list[Path]:
    return sorted(p for p in directory.glob("*.sql") if re.match(r"^\d{4}_", p.name))


def statements(sql: str) -> list[str]:
    """Split on semicolons that end a line; the HTTP interface takes one statement per call."""
    body = "\n".join(line for line in sql.splitlines() if not line.lstrip().startswith("--"))
    return [s.strip() for s in re.split(r";\s*$", body, flags=re.MULTILINE) if s.strip()]


def apply_clickhouse_migrations(client: Client, directory: Path) -> list[str]:
    client.command(_LEDGER)
    done = {row[0] for row in client.query("SELECT name FROM schema_migrations FINAL").result_rows}
    applied = []
    for path in migration_files(directory):
        if path.name in done:
            continue
        for statement in statements(path.read_text()):
            client.command(statement)
        client.insert("schema_migrations", [[path.name]], column_names=["name"])
        applied.append(path.name)
    return applied
