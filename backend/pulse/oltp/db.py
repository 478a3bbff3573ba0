"""One async engine factory for both the embedded SQLite file and production PostgreSQL."""

from __future__ import annotations

import sqlite3
import time
from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

_SQLITE = "sqlite+aiosqlite"
_POSTGRES = "postgresql+asyncpg"
_DRIVERS = {
    "sqlite": _SQLITE,
    _SQLITE: _SQLITE,
    "postgresql": _POSTGRES,
    "postgres": _POSTGRES,
    _POSTGRES: _POSTGRES,
}
_BUSY_TIMEOUT_MS = 5000


def create_engine(database_url: str) -> AsyncEngine:
    """Build the async engine for a sqlite:// or postgres(ql):// URL, picking the async driver."""
    url = _normalise(database_url)
    if url.drivername == _SQLITE:
        engine = create_async_engine(url)
        event.listen(engine.sync_engine, "connect", _configure_sqlite)
        event.listen(engine.sync_engine, "begin", _begin_sqlite)
        return engine
    # Production connections sit idle in the pool and can be cut by the server or a proxy.
    return create_async_engine(url, pool_pre_ping=True)


def _normalise(database_url: str) -> URL:
    try:
        url = make_url(database_url)
    except ArgumentError:
        # The URL may hold a password, so the message names only what was expected.
        raise ValueError(
            "database URL must look like scheme://..., with scheme sqlite or postgresql"
        ) from None
    driver = _DRIVERS.get(url.drivername)
    if driver is None:
        raise ValueError(
            f"unsupported database URL scheme {url.drivername!r}: expected one of {', '.join(_DRIVERS)}"
        )
    url = url.set(drivername=driver)
    if driver == _POSTGRES and "sslmode" in url.query:
        # libpq spells it sslmode (as hosted PostgreSQL URLs do); asyncpg takes the same values as ssl.
        url = url.update_query_dict({"ssl": url.query["sslmode"]}).difference_update_query(["sslmode"])
    return url


def _configure_sqlite(dbapi_connection: Any, _record: Any) -> None:
    # Hand transaction control to _begin_sqlite: the sqlite3 module's own does not BEGIN before DDL,
    # which would let a half-applied migration commit.
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    try:
        # Five seconds outlasts any other process's write transaction (all are short) yet turns a stuck
        # writer into an error rather than a hung request.
        cursor.execute(f"PRAGMA busy_timeout = {_BUSY_TIMEOUT_MS}")
        # WAL lets the collector keep reading sites while the dashboard writes.
        _switch_to_wal(cursor)
        cursor.execute("PRAGMA foreign_keys = ON")
    finally:
        cursor.close()


def _switch_to_wal(cursor: Any) -> None:
    # The mode is stored in the file, so only a file's first opening does any work. But processes
    # opening a fresh file together get SQLITE_BUSY at once instead of waiting out busy_timeout, hence
    # the retries; the short sleeps block the event loop only during that first opening.
    deadline = time.monotonic() + _BUSY_TIMEOUT_MS / 1000
    while True:
        try:
            cursor.execute("PRAGMA journal_mode = WAL")
            return
        except sqlite3.OperationalError as exc:
            if exc.sqlite_errorcode & 0xFF != sqlite3.SQLITE_BUSY or time.monotonic() > deadline:
                raise
        time.sleep(0.01)


def _begin_sqlite(connection: Any) -> None:
    # Deferred, so readers never queue behind writers. The price: a transaction that reads before it
    # writes can fail with SQLITE_BUSY, without waiting, when another process wrote in between, so
    # every write transaction here starts with its write.
    connection.exec_driver_sql("BEGIN")
