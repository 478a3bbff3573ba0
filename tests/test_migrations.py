"""`pulse migrate` applies numbered SQL once; running it again changes nothing."""

from __future__ import annotations

from pathlib import Path

from pulse.migrate import migrate
from pulse.warehouse.migrate import migration_files, statements
from stack import Stack


async def test_second_migrate_is_a_no_op(stack: Stack) -> None:
    applied = await migrate(stack.settings)
    assert applied.clickhouse == []
    assert applied.oltp == []


def test_migration_files_are_numbered_and_split_into_statements() -> None:
    files = migration_files(Path(__file__).resolve().parents[1] / "migrations" / "clickhouse")
    assert [f.name[:4] for f in files] == sorted(f.name[:4] for f in files)
    assert len(files) >= 2
    rollups = statements(files[1].read_text())
    assert len(rollups) == 6
    assert all(not s.endswith(";") for s in rollups)


def test_statements_ignore_comments_and_keep_multiline_bodies() -> None:
    sql = "-- a comment; with a semicolon\nCREATE TABLE a\n(x UInt8)\nENGINE = Memory;\n\nSELECT 1;\n"
    assert statements(sql) == ["CREATE TABLE a\n(x UInt8)\nENGINE = Memory", "SELECT 1"]
