"""`pulse tenant isolate`: move a tenant to a ClickHouse database of its own (the "separate database" tier).

In order, each step safe to run again:
1. create the database and apply the ClickHouse migrations to it;
2. record it in the tenant's row, then wait until every process routes by that (the routing cache,
   pulse.warehouse.routing, plus a margin for a batch in flight): from then on the workers write the
   tenant's new events there, and the dashboard reads them there;
3. copy the tenant's raw events from the shared `events` into its own, each once: its views rebuild
   its rollups, sessions and consumed offsets from them. The tenant's figures from before the move
   appear as this copy lands;
4. delete from the shared `events` the rows copied, and, once none of the tenant's are left there,
   the tenant's rows from every table the shared views fill (rollups, sessions, breakdowns) and
   from the folds the stats engine keeps (READ_PATH_TABLES), which it makes again in the tenant's
   database when they are next asked for.

A row is the same row in both databases when its Kafka position and event id are: the copy leaves
out those already copied and the delete takes only those copied, so a run cut short and run again
neither copies twice nor deletes a row that was never copied (a worker still writing the tenant's
events to the shared database during step 3 has them copied in a next round).
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Awaitable, Callable
from typing import Any

import msgspec

from pulse.oltp.accounts import Accounts
from pulse.replay.swap import UnknownProjection, projections
from pulse.settings import Settings
from pulse.warehouse.client import Warehouse
from pulse.warehouse.migrate import apply_to_database

# A batch that read the routing just before it changed may still be inserting when the cache expires.
ROUTING_MARGIN_S = 2.0
# Rounds of copying rows that kept arriving in the shared database after the wait, before giving up.
MAX_ROUNDS = 5
# Written by the stats engine rather than by views (pulse.stats.visit_days): not in `projections`.
READ_PATH_TABLES = ("visit_days", "visit_rows", "visit_rows_live", "visit_rows_live_marks")

_NAME = re.compile(r"[a-z][a-z0-9_]{0,62}")
_RESERVED = frozenset({"default", "system", "information_schema"})
_COLUMN = re.compile(r"\w+")
_ROW = "(kafka_epoch, kafka_partition, kafka_offset, event_id)"
_OWN_ROWS = f"SELECT {_ROW[1:-1]} FROM {{own:Identifier}}.events WHERE tenant_id = {{tenant:String}}"  # noqa: S608
_NOT_COPIED = f"tenant_id = {{tenant:String}} AND {_ROW} NOT IN ({_OWN_ROWS})"
_COPIED = f"tenant_id = {{tenant:String}} AND {_ROW} IN ({_OWN_ROWS})"
# Waits until the deleted rows are gone from every read, as the summary says they are.
_MUTATION_SYNC = {"lightweight_deletes_sync": 2, "mutations_sync": 2}


class IsolationRefused(ValueError):
    """The move asked for cannot be done; the message says why."""


class Isolation(msgspec.Struct, frozen=True, kw_only=True):
    tenant_id: str
    database: str
    # ClickHouse migrations applied to the tenant's database by this run.
    migrations: list[str]
    # Raw events copied from the shared database by this run.
    copied: int
    # The tenant's raw events in its database when the run ended.
    events: int
    # Shared table → the tenant's rows deleted from it by this run.
    deleted: dict[str, int]
    # The tenant's raw events still arriving in the shared database after every round: run again.
    left_behind: int


def default_database(tenant_id: str) -> str:
    return f"pulse_t_{tenant_id[:12]}"


async def isolate_tenant(
    settings: Settings,
    warehouse: Warehouse,
    accounts: Accounts,
    tenant_id: str,
    database: str | None = None,
    progress: Callable[[str], None] = lambda _: None,
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
) -> Isolation:
    """`warehouse` is the shared database's: a process that has one open (the test suite's stack)
    passes it, since chDB lets one process open a data path; `pulse tenant isolate` opens one."""
    if settings.clickhouse_cluster:
        raise IsolationRefused(
            "a tenant can be given a database of its own on a single ClickHouse server only, "
            f"not yet on cluster {settings.clickhouse_cluster}"
        )
    tenant = await accounts.get_tenant(tenant_id)
    if tenant is None:
        raise IsolationRefused(f"no tenant with id {tenant_id!r}")
    name = database or tenant.clickhouse_database or default_database(tenant.id)
    await _check_name(accounts, warehouse, tenant.id, tenant.clickhouse_database, name)
    try:
        # Found before anything changes: a shared table this command could not clean stops it here.
        shared_tables = [p.table for p in await projections(warehouse)]
    except UnknownProjection as exc:
        raise IsolationRefused(f"the shared database's tables cannot be cut by tenant: {exc}") from exc

    progress(f"creating database {name} and applying the ClickHouse migrations to it")
    migrations = await warehouse.run(
        apply_to_database, settings.effective_clickhouse_url, name, settings.migrations_dir / "clickhouse"
    )
    if tenant.clickhouse_database != name:
        await accounts.set_clickhouse_database(tenant.id, name)
    settle_s = settings.tenant_database_cache_s + ROUTING_MARGIN_S
    progress(f"tenant {tenant.id} routed to {name}; waiting {settle_s:.0f}s until every process routes by it")
    await sleep(settle_s)

    moved = _Move(warehouse, tenant.id, name)
    columns = await moved.columns()
    copied = deleted_events = left = 0
    for _ in range(MAX_ROUNDS):
        count = await moved.count("{shared:Identifier}.events", _NOT_COPIED)
        progress(f"copying {count} raw events into {name}.events")
        await moved.command(
            f"INSERT INTO {{own:Identifier}}.events ({columns}) "  # noqa: S608 (catalogue names)
            f"SELECT {columns} FROM {{shared:Identifier}}.events WHERE {_NOT_COPIED}",
            # Each row goes in once by the NOT IN, and must: no block is taken for an earlier one.
            {"insert_deduplicate": 0},
        )
        copied += count
        deleted = await moved.count("{shared:Identifier}.events", _COPIED)
        progress(f"deleting the {deleted} copied raw events from {warehouse.database}.events")
        await moved.command(f"DELETE FROM {{shared:Identifier}}.events WHERE {_COPIED}", _MUTATION_SYNC)  # noqa: S608
        deleted_events += deleted
        left = await moved.count("{shared:Identifier}.events", "tenant_id = {tenant:String}")
        if not left:
            break
        await sleep(ROUTING_MARGIN_S)

    removed = {"events": deleted_events}
    if not left:
        for table in [*shared_tables, *READ_PATH_TABLES]:
            where = "tenant_id = {tenant:String}"
            removed[table] = await moved.count(f"{{shared:Identifier}}.{table}", where)
            progress(f"deleting {removed[table]} rows of {warehouse.database}.{table}")
            await moved.command(f"DELETE FROM {{shared:Identifier}}.{table} WHERE {where}", _MUTATION_SYNC)  # noqa: S608
    events = await moved.count("{own:Identifier}.events", "tenant_id = {tenant:String}")
    return Isolation(
        tenant_id=tenant.id,
        database=name,
        migrations=migrations,
        copied=copied,
        events=events,
        deleted=removed,
        left_behind=left,
    )


async def _check_name(
    accounts: Accounts, warehouse: Warehouse, tenant_id: str, current: str, name: str
) -> None:
    if not _NAME.fullmatch(name) or name in _RESERVED:
        raise IsolationRefused(
            f"--database {name!r} is not a usable ClickHouse database name: a lower-case letter, then "
            "lower-case letters, digits or _, at most 63 characters, not default, system or information_schema"
        )
    if name == warehouse.database:
        raise IsolationRefused(f"--database {name!r} is the shared database")
    if current and current != name:
        raise IsolationRefused(f"tenant {tenant_id} already has its own database, {current}")
    holders = [
        t for t, db in (await accounts.clickhouse_databases()).items() if db == name and t != tenant_id
    ]
    if holders:
        raise IsolationRefused(f"database {name} already holds tenant {holders[0]}")


class _Move:
    """Statements about one tenant between the shared database and its own, every value bound."""

    def __init__(self, warehouse: Warehouse, tenant_id: str, own: str) -> None:
        self._warehouse = warehouse
        self._parameters = {"tenant": tenant_id, "own": own, "shared": warehouse.database}

    async def columns(self) -> str:
        """The raw table's stored columns, as the shared database has them (its own has the same)."""
        result = await self._warehouse.run(
            self._warehouse.client.query,
            "SELECT name FROM system.columns WHERE database = {shared:String} AND table = 'events' "
            "AND default_kind NOT IN ('MATERIALIZED', 'ALIAS', 'EPHEMERAL') ORDER BY position",
            parameters=self._parameters,
        )
        names = [str(row[0]) for row in result.result_rows]
        if not names or not all(_COLUMN.fullmatch(name) for name in names):
            raise IsolationRefused(f"unexpected columns in {self._warehouse.database}.events: {names}")
        return ", ".join(names)

    async def count(self, table: str, where: str) -> int:
        result = await self._warehouse.run(
            self._warehouse.client.query,
            f"SELECT count() FROM {table} WHERE {where}",  # noqa: S608 (constants and catalogue names)
            parameters=self._parameters,
        )
        return int(result.result_rows[0][0])

    async def command(self, sql: str, settings: dict[str, Any]) -> None:
        await self._warehouse.run(
            self._warehouse.client.command, sql, parameters=self._parameters, settings=settings
        )
