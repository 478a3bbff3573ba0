"""ClickHouse access for every role: chDB in-process or a server over HTTP, one code path.

clickhouse-connect's chDB backend is synchronous and a chDB data path belongs to one
process, so all calls run on one dedicated thread; the HTTP backend uses a small pool.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import clickhouse_connect
from clickhouse_connect.driver.client import Client


def is_embedded(url: str) -> bool:
    return url.startswith("chdb:")


def connect(url: str, database: str | None = None) -> Client:
    if is_embedded(url):
        Path(url.removeprefix("chdb://")).mkdir(parents=True, exist_ok=True)
    kwargs: dict[str, Any] = {"dsn": url}
    if database:
        kwargs["database"] = database
    return clickhouse_connect.get_client(**kwargs)


class Warehouse:
    """Owns the client; `run` executes a blocking client call off the event loop."""

    def __init__(self, url: str, database: str) -> None:
        bootstrap = connect(url)
        try:
            bootstrap.command(f"CREATE DATABASE IF NOT EXISTS {_identifier(database)}")
        finally:
            bootstrap.close()
        self.client = connect(url, database)
        self.database = database
        self._executor = ThreadPoolExecutor(max_workers=1 if is_embedded(url) else 4, thread_name_prefix="ch")

    async def run[T](self, call: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, functools.partial(call, *args, **kwargs))

    async def insert(
        self, table: str, rows: Sequence[Sequence[Any]], columns: Sequence[str], token: str
    ) -> None:
        settings = {
            "insert_deduplication_token": token,
            "deduplicate_blocks_in_dependent_materialized_views": 1,
        }
        await self.run(self.client.insert, table, rows, column_names=list(columns), settings=settings)

    def close(self) -> None:
        self._executor.shutdown(wait=True)
        self.client.close()


def _identifier(name: str) -> str:
    if not name.replace("_", "").isalnum():
        raise ValueError(f"invalid ClickHouse database name {name!r}")
    return name
