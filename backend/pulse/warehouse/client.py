"""ClickHouse access for every role: chDB in-process or a server over HTTP, one code path.

clickhouse-connect's chDB backend is synchronous, so calls run on a small pool of threads. A
chDB data path belongs to one process, but that process may open any number of connection
handles to it, each serving one call at a time: each thread of the pool opens its own, so a page's
small queries run side by side instead of queueing behind each other (bench-dashboard). The HTTP
backend's client serves every thread of its pool.

The connection opens on the first call, on that call's thread: a process starts while
ClickHouse is down (pages answer 503 until it is back; live views stream meanwhile), and one
that only streams live views never loads chDB's engine and its memory.
"""

from __future__ import annotations

import asyncio
import functools
import os
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import clickhouse_connect
from clickhouse_connect.driver.client import Client
from clickhouse_connect.driver.query import QueryResult
from clickhouse_connect.driver.summary import QuerySummary

from pulse.warehouse.cluster import Cluster, ClusterError


def is_embedded(url: str) -> bool:
    return url.startswith("chdb:")


def connect(url: str, database: str | None = None, settings: dict[str, Any] | None = None) -> Client:
    if is_embedded(url):
        Path(url.removeprefix("chdb://")).mkdir(parents=True, exist_ok=True)
    kwargs: dict[str, Any] = {"dsn": url}
    if database:
        kwargs["database"] = database
    if settings:
        kwargs["settings"] = settings
    return clickhouse_connect.get_client(**kwargs)


def create_database_ddl(database: str, cluster: str = "") -> str:
    on_cluster = f" {Cluster(cluster, database).on_cluster}" if cluster else ""
    return f"CREATE DATABASE IF NOT EXISTS {_identifier(database)}{on_cluster}"


PARALLEL_VIEWS_BELOW_ROWS = 2_000
# chDB calls at once: a query already uses every core for its scans, so more threads than cores
# only overlap the parsing and planning of small queries, which take a few milliseconds each.
EMBEDDED_THREADS = max(2, min(4, os.cpu_count() or 1))
HTTP_THREADS = 4


class Warehouse:
    """Owns the client; `run` executes a blocking client call off the event loop.

    `cluster` (PULSE_CLICKHOUSE_CLUSTER) is set where the schema is the cluster form of the
    migrations (warehouse/cluster.py): each table name is then a Distributed table.
    """

    def __init__(self, url: str, database: str, cluster: str = "") -> None:
        if cluster and is_embedded(url):
            raise ClusterError(
                "PULSE_CLICKHOUSE_CLUSTER names a cluster of ClickHouse servers: set CLICKHOUSE_URL to "
                "one of them (embedded chDB is a single server)"
            )
        embedded = is_embedded(url)
        self.client = LazyClient(functools.partial(_open, url, database, cluster), per_thread=embedded)
        self.database = database
        self._executor = ThreadPoolExecutor(
            max_workers=EMBEDDED_THREADS if embedded else HTTP_THREADS, thread_name_prefix="ch"
        )

    async def run[T](self, call: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, functools.partial(call, *args, **kwargs))

    async def insert(
        self,
        table: str,
        rows: Sequence[Sequence[Any]],
        columns: Sequence[str],
        token: str,
        database: str | None = None,
    ) -> None:
        """Into `table` of this warehouse's database, or of `database` (a tenant's own)."""
        settings = {
            "insert_deduplication_token": token,
            "deduplicate_blocks_in_dependent_materialized_views": 1,
            # Each view writes a part of its own. A small batch is the live view waiting, and its
            # views in parallel took its insert from 235 to 154 ms; a large one is a worker
            # catching up, whose events/s parallel views cut by 6% (bench/rollup.py).
            "parallel_view_processing": int(len(rows) < PARALLEL_VIEWS_BELOW_ROWS),
        }
        await self.run(
            self.client.insert,
            table,
            rows,
            column_names=list(columns),
            database=database,
            settings=settings,
        )

    def close(self) -> None:
        self._executor.shutdown(wait=True)
        self.client.close()


class LazyClient:
    """clickhouse-connect's client, opened by the first call that needs it (then kept); with
    `per_thread`, one for each thread that calls (a chDB handle serves one call at a time)."""

    def __init__(self, open_client: Callable[[], Client], per_thread: bool = False) -> None:
        self._open = open_client
        self._per_thread = per_thread
        self._clients: dict[int, Client] = {}
        self._lock = threading.Lock()

    @property
    def connected(self) -> bool:
        return bool(self._clients)

    def query(self, *args: Any, **kwargs: Any) -> QueryResult:
        return self._connected().query(*args, **kwargs)

    def command(self, *args: Any, **kwargs: Any) -> Any:
        return self._connected().command(*args, **kwargs)

    def insert(self, *args: Any, **kwargs: Any) -> QuerySummary:
        return self._connected().insert(*args, **kwargs)

    def close(self) -> None:
        with self._lock:
            opened, self._clients = self._clients, {}
        for client in opened.values():
            client.close()

    def _connected(self) -> Client:
        key = threading.get_ident() if self._per_thread else 0
        # A failed open leaves nothing behind: the next call tries again.
        with self._lock:
            if (client := self._clients.get(key)) is None:
                client = self._clients[key] = self._open()
            return client


def _open(url: str, database: str, cluster: str) -> Client:
    bootstrap = connect(url)
    try:
        bootstrap.command(create_database_ddl(database, cluster))
    finally:
        bootstrap.close()
    # By default a Distributed table acknowledges an insert once it is queued on the server that
    # received it, and sends it to the shards later. The rollup worker treats an acknowledged
    # batch as stored: the offsets it next seeks from are read from the shards, so a queued batch
    # would be read again and counted twice. In the foreground, the insert returns once every
    # shard has its part, and each part is an ordinary insert there, deduplicated by the same
    # token when a batch is retried.
    settings = {"distributed_foreground_insert": 1} if cluster else None
    return connect(url, database, settings)


def _identifier(name: str) -> str:
    if not name.replace("_", "").isalnum():
        raise ValueError(f"invalid ClickHouse database name {name!r}")
    return name
