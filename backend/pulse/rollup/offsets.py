"""Where a worker starts reading a partition: after the last offset ClickHouse holds.

Kafka's committed offsets trail ClickHouse by up to one batch (a worker can die between the
insert and the commit); reading from them again would count that batch twice, whenever its
retried insert is cut differently. The rows themselves say what is durable.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from aiokafka import AIOKafkaConsumer, ConsumerRebalanceListener, TopicPartition

from pulse.settings import Settings
from pulse.warehouse.client import Warehouse

log = logging.getLogger(__name__)

_NEXT_OFFSETS = """
SELECT kafka_partition, max(next_offset)
FROM {db:Identifier}.consumed_offsets
WHERE kafka_epoch = {epoch:String}
GROUP BY kafka_partition
"""


async def stored_next_offsets(
    warehouse: Warehouse, epoch: str, database: str | None = None
) -> dict[int, int]:
    """Per partition, the offset after the last one stored in the warehouse's database, or in
    `database` (a tenant's own, rollup/placement.py)."""
    parameters = {"epoch": epoch, "db": database or warehouse.database}
    result = await warehouse.run(warehouse.client.query, _NEXT_OFFSETS, parameters=parameters)
    return {int(partition): int(offset) for partition, offset in result.result_rows}


async def all_consumed(settings: Settings, warehouse: Warehouse) -> bool:
    """The workers have dealt with every message of the raw topic up to the end the broker reports.

    ClickHouse's offsets say what is stored; the group's committed offsets also cover batches
    that stored nothing (bots, dead letters), which ClickHouse's offsets never reach.
    """
    consumer = AIOKafkaConsumer(
        bootstrap_servers=settings.kafka_bootstrap_servers, group_id=settings.consumer_group
    )
    await consumer.start()
    try:
        await consumer.topics()
        partitions = consumer.partitions_for_topic(settings.topic_raw) or set()
        ends = await consumer.end_offsets([TopicPartition(settings.topic_raw, p) for p in partitions])
        committed = {tp.partition: await consumer.committed(tp) or 0 for tp in ends}
    finally:
        await consumer.stop()
    stored = await stored_next_offsets(warehouse, settings.kafka_epoch)
    return all(max(stored.get(tp.partition, 0), committed[tp.partition]) >= end for tp, end in ends.items())


class SeekToStored(ConsumerRebalanceListener):  # type: ignore[misc]
    """On every assignment, position each partition after what ClickHouse already holds.

    aiokafka rebalances in a background task while the worker may hold a batch: `batch` is
    the lock the worker holds from the end of each poll to its commit. Revoking waits for it,
    and every member's revocation completes before any member's assignment, so the partition's
    next owner finds that batch in ClickHouse. Assigning holds it while reading and seeking, and
    `on_assignment` (called under it, with the offsets sought per partition) lets the worker
    set aside a batch it polled while the partitions were being positioned.
    """

    def __init__(
        self,
        consumer: AIOKafkaConsumer,
        warehouse: Warehouse,
        epoch: str,
        batch: asyncio.Lock,
        on_assignment: Callable[[dict[int, int]], Awaitable[None]],
    ) -> None:
        self._consumer = consumer
        self._warehouse = warehouse
        self._epoch = epoch
        self._batch = batch
        self._on_assignment = on_assignment

    async def on_partitions_revoked(self, revoked: list[TopicPartition]) -> None:
        async with self._batch:
            pass

    async def on_partitions_assigned(self, assigned: list[TopicPartition]) -> None:
        async with self._batch:
            await self._on_assignment(await self._seek(assigned))

    async def _seek(self, assigned: list[TopicPartition]) -> dict[int, int]:
        if not assigned:
            return {}
        stored = await stored_next_offsets(self._warehouse, self._epoch)
        ends = await self._consumer.end_offsets(list(assigned))
        sought = {}
        for tp in assigned:
            offset = stored.get(tp.partition)
            if offset is None:
                continue
            if offset > ends[tp]:
                # Tansu reports an end up to a batch short of records it serves; reading from
                # Kafka's committed offset instead would count the batches in between twice.
                log.warning(
                    "ClickHouse holds partition %s up to offset %s, the broker reports its end at %s; "
                    "reading from %s. If the topic was recreated, set PULSE_KAFKA_EPOCH to a new value.",
                    tp.partition,
                    offset,
                    ends[tp],
                    offset,
                )
            self._consumer.seek(tp, offset)
            sought[tp.partition] = offset
        return sought
