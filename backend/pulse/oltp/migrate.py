"""Apply the plain-SQL OLTP migrations, each file once, on SQLite or PostgreSQL."""

from __future__ import annotations

import asyncio
import re
import time
from pathlib import Path

from sqlalchemy import text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine

_FILE_NAME = re.compile(r"(\d+)_.+\.sql")
# A statement ends at a semicolon that ends its line, so a file needs no SQL parser.
_STATEMENT_END = re.compile(r";[ \t]*(?:\r?\n|\Z)")

_CREATE_TABLE = text(
    "CREATE TABLE IF NOT EXISTS schema_migrations (name TEXT PRIMARY KEY, applied_at BIGINT NOT NULL)"
)
_APPLIED = text("SELECT name FROM schema_migrations")
# The claim comes before the file's statements: a racing process then waits on this transaction
# (PostgreSQL's row lock, SQLite's write lock), finds the row committed and inserts nothing.
_CLAIM = text(
    "INSERT INTO schema_migrations (name, applied_at) VALUES (:name, :applied_at)"
    " ON CONFLICT (name) DO NOTHING"
)


async def apply_oltp_migrations(engine: AsyncEngine, directory: Path) -> list[str]:
    """Apply the NNNN_*.sql files not yet recorded, in numeric order; return the names applied now."""
    migrations = await asyncio.to_thread(_load, directory)
    await _create_table(engine)
    async with engine.connect() as conn:
        done = set((await conn.scalars(_APPLIED)).all())
    applied: list[str] = []
    for name, statements in migrations:
        if name not in done and await _apply(engine, name, statements):
            applied.append(name)
    return applied


def _load(directory: Path) -> list[tuple[str, list[str]]]:
    numbered: dict[int, Path] = {}
    for path in directory.iterdir():
        match = _FILE_NAME.fullmatch(path.name)
        if match is None:
            continue
        number = int(match.group(1))
        if number in numbered:
            raise ValueError(f"migrations {numbered[number].name} and {path.name} share number {number}")
        numbered[number] = path
    return [
        (numbered[number].name, _split_statements(numbered[number].read_text(encoding="utf-8")))
        for number in sorted(numbered)
    ]


def _split_statements(sql: str) -> list[str]:
    statements = (chunk.strip() for chunk in _STATEMENT_END.split(sql))
    return [statement for statement in statements if not _is_only_comments(statement)]


def _is_only_comments(chunk: str) -> bool:
    return all(not line.strip() or line.lstrip().startswith("--") for line in chunk.splitlines())


async def _create_table(engine: AsyncEngine) -> None:
    try:
        async with engine.begin() as conn:
            await conn.execute(_CREATE_TABLE)
    except DBAPIError:
        # Two PostgreSQL processes creating it at once: the loser fails on a catalog unique index
        # once the winner commits, after which IF NOT EXISTS holds. Any other error recurs here.
        async with engine.begin() as conn:
            await conn.execute(_CREATE_TABLE)


async def _apply(engine: AsyncEngine, name: str, statements: list[str]) -> bool:
    async with engine.begin() as conn:
        claim = await conn.execute(_CLAIM, {"name": name, "applied_at": time.time_ns() // 1_000_000})
        if claim.rowcount == 0:
            return False
        for statement in statements:
            await conn.exec_driver_sql(statement)
    return True
