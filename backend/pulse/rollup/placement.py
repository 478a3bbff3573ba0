"""Where a batch's events are written when some tenants have a ClickHouse database of their own.

A batch is split by its tenants' databases (pulse.warehouse.routing) and written in this order:
1. each tenant database's part, with the batch's token and the database's name as its token;
2. the shared database's part, with the batch's token (the default tier's batches, which hold
   nothing else, are written as they always were: one insert);
3. when the batch held any event bound for a tenant's database, a row per partition of the batch
   (the offset after its last record) into the shared `consumed_offsets`. The shared offsets, which
   a worker seeks from (rollup/offsets.py), then cover the whole batch even when it held no event
   bound for the shared database.

Each tenant database's own `consumed_offsets`, filled by its view from its events, says what it
holds: an event bound for it below its next offset on the partition is already there, and is left
out. So a worker killed
- among the tenant databases' parts reads the batch again from before it; the parts stored are
  left out, the rest are inserted;
- after the shared part, before the offsets row, reads again from after the last shared event;
  every event after it was bound for a tenant's database, and is there already.
A worker reads a database's offsets the first time it routes an event there after being assigned
its partitions (no other worker writes them until they are revoked), then keeps them up to date
with its own inserts.
"""

from __future__ import annotations

from collections.abc import Sequence

import msgspec
from aiokafka import ConsumerRecord

from pulse.events.message import AnyEvent
from pulse.rollup.offsets import stored_next_offsets
from pulse.rollup.rows import COLUMNS
from pulse.warehouse.client import Warehouse
from pulse.warehouse.routing import TenantDatabaseRouting

OFFSET_COLUMNS = ("kafka_epoch", "kafka_partition", "next_offset")


class Routed(msgspec.Struct, frozen=True):
    # In batch order, each with its database; those already stored are left out.
    events: list[tuple[ConsumerRecord, AnyEvent, str]]
    # Events bound for a tenant's database were in the batch, stored now or before.
    dedicated: bool
    already_stored: int


class Part(msgspec.Struct, frozen=True):
    """One insert of a batch."""

    database: str
    table: str
    columns: tuple[str, ...]
    rows: list[list[object]]
    token: str
    # Partition → the offset after its last event here: what a tenant database's part makes durable.
    next_offsets: dict[int, int]


class Placement:
    def __init__(self, warehouse: Warehouse, databases: TenantDatabaseRouting, epoch: str) -> None:
        self._warehouse = warehouse
        self._databases = databases
        self._epoch = epoch
        # Tenant database → partition → the offset after the last event stored there.
        self._stored: dict[str, dict[int, int]] = {}

    def forget(self) -> None:
        """Partitions were (re)assigned: another worker may have written them meanwhile."""
        self._stored.clear()

    async def route(self, kept: Sequence[tuple[ConsumerRecord, AnyEvent]]) -> Routed:
        dedicated = await self._databases.dedicated()
        shared = self._warehouse.database
        routed = []
        bound_for_own = False
        for record, event in kept:
            database = dedicated.get(event.tenant_id, shared)
            if database != shared:
                bound_for_own = True
                stored = self._stored.get(database)
                if stored is None:
                    stored = self._stored[database] = await stored_next_offsets(
                        self._warehouse, self._epoch, database
                    )
                if record.offset < stored.get(record.partition, 0):
                    continue
            routed.append((record, event, database))
        return Routed(routed, bound_for_own, len(kept) - len(routed))

    def parts(
        self, routed: Routed, rows: Sequence[list[object]], records: Sequence[ConsumerRecord], token: str
    ) -> list[Part]:
        """The batch's inserts in the order that survives a kill; `rows` are `routed.events`' rows."""
        shared = self._warehouse.database
        by_database: dict[str, list[list[object]]] = {}
        next_offsets: dict[str, dict[int, int]] = {}
        for (record, _, database), row in zip(routed.events, rows, strict=True):
            by_database.setdefault(database, []).append(row)
            after = next_offsets.setdefault(database, {})
            after[record.partition] = max(after.get(record.partition, 0), record.offset + 1)
        parts = [
            Part(
                database,
                "events",
                COLUMNS,
                by_database[database],
                f"{token}:{database}",
                next_offsets[database],
            )
            for database in sorted(by_database)
            if database != shared
        ]
        if shared in by_database:
            parts.append(Part(shared, "events", COLUMNS, by_database[shared], token, next_offsets[shared]))
        if routed.dedicated:
            batch: dict[int, int] = {}
            for record in records:
                batch[record.partition] = max(batch.get(record.partition, 0), record.offset + 1)
            ordered = sorted(batch.items())
            offsets: list[list[object]] = [[self._epoch, p, offset] for p, offset in ordered]
            # Named by the offsets themselves: a batch of events all stored before has no events to
            # name it by, and where inserts are deduplicated by default (a cluster's replicated
            # tables) another batch's row must not be taken for this one.
            offsets_token = f"offsets:{self._epoch}:" + ",".join(f"{p}={o}" for p, o in ordered)
            parts.append(Part(shared, "consumed_offsets", OFFSET_COLUMNS, offsets, offsets_token, batch))
        return parts

    async def write(self, part: Part) -> None:
        own = part.database != self._warehouse.database
        await self._warehouse.insert(
            part.table, part.rows, part.columns, part.token, database=part.database if own else None
        )
        if own:
            stored = self._stored.setdefault(part.database, {})
            for partition, offset in part.next_offsets.items():
                stored[partition] = max(stored.get(partition, 0), offset)
