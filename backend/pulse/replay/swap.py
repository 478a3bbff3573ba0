"""Swap a replay's days in: the scope's raw rows and every projection of them, rebuilt.

The projections are whatever materialized views read `events` today, found in ClickHouse's
catalogue: a rollup added by a later migration is rebuilt for past days by a replay, with no
list here to keep in step. Each projection's rows for the days are deleted, then the staged raw
rows are inserted into `events`, and the views compute the projections from them again.

Running the swap again (a worker died half-way) deletes and inserts again: the result is the
same. Readers may briefly see the days partly empty between the delete and the insert;
ClickHouse has no multi-table transaction to hide that.
"""

from __future__ import annotations

import re

import msgspec

from pulse.oltp.replay_jobs import ReplayJob
from pulse.replay.emit import scope_parameters
from pulse.replay.staging import staging_table
from pulse.rollup.rows import COLUMNS
from pulse.warehouse.client import Warehouse

_TARGET = re.compile(r"^CREATE MATERIALIZED VIEW \S+ TO (?:[\w`]+\.)?`?(\w+)`? ")
# Tables partitioned by month of their time column, as every rollup is: that column says which day a
# row belongs to.
_MONTHLY = re.compile(r"^toYYYYMM\((\w+)\)$")
_SCOPED = {"tenant_id", "site_id"}


class Projection(msgspec.Struct, frozen=True):
    table: str
    time_column: str


class UnknownProjection(Exception):
    """A view's table cannot be cut by tenant, site and day, so its days cannot be swapped."""


async def projections(warehouse: Warehouse) -> list[Projection]:
    """Tables that views fill from `events`, each with its time column.

    Tables without tenant and site (the consumed offsets) are not per-tenant projections: they
    are left as they are.
    """
    client = warehouse.client
    views = await warehouse.run(
        client.query,
        "SELECT dependencies_table FROM system.tables WHERE database = currentDatabase() AND name = 'events'",
    )
    names = list(views.result_rows[0][0]) if views.result_rows else []
    if not names:
        return []
    definitions = await warehouse.run(
        client.query,
        "SELECT name, create_table_query FROM system.tables "
        "WHERE database = currentDatabase() AND name IN {names:Array(String)}",
        parameters={"names": names},
    )
    targets = []
    for view, definition in definitions.result_rows:
        match = _TARGET.match(definition)
        if match is None:
            raise UnknownProjection(f"view {view} writes to no table of its own (no TO clause)")
        targets.append(match.group(1))
    tables = await warehouse.run(
        client.query,
        "SELECT t.name, t.partition_key, groupArray(c.name) FROM system.tables AS t "
        "JOIN system.columns AS c ON c.database = t.database AND c.table = t.name "
        "WHERE t.database = currentDatabase() AND t.name IN {names:Array(String)} "
        "GROUP BY t.name, t.partition_key ORDER BY t.name",
        parameters={"names": targets},
    )
    found = []
    for table, partition_key, columns in tables.result_rows:
        if not set(columns) >= _SCOPED:
            continue
        match = _MONTHLY.match(partition_key)
        if match is None:
            raise UnknownProjection(
                f"{table} is not partitioned by toYYYYMM(<time column>), so a replay cannot tell its days"
            )
        found.append(Projection(table, match.group(1)))
    return found


async def swap(warehouse: Warehouse, job: ReplayJob) -> None:
    cut = [Projection("events", "ts"), *await projections(warehouse)]
    parameters = scope_parameters(job)
    # Table and column names come from ClickHouse's catalogue through \w+ patterns; values are bound.
    for projection in cut:
        day = f"toDate({projection.time_column})"
        where = "tenant_id = {tenant:String} AND site_id IN {sites:Array(String)}"
        delete = (
            f"DELETE FROM {projection.table} WHERE {where} AND {day} BETWEEN {{first:Date}} AND {{last:Date}}"  # noqa: S608
        )
        await warehouse.run(
            warehouse.client.command,
            delete,
            parameters=parameters,
            settings={"lightweight_deletes_sync": 2, "mutations_sync": 2},
        )
    columns = ", ".join(COLUMNS)
    # insert_deduplicate off: the same rows swapped in twice (a replay of unchanged days) must go in.
    await warehouse.run(
        warehouse.client.command,
        f"INSERT INTO events ({columns}) SELECT {columns} FROM {staging_table(job.id)} FINAL",  # noqa: S608
        settings={"insert_deduplicate": 0},
    )
