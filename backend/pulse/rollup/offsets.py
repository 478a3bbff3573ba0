"""Where a worker starts reading a partition: after the last offset ClickHouse holds.

Kafka's committed offsets trail ClickHouse by up to one batch (a worker can die between the
insert and the commit); reading from them again would count that batch twice, whenever its
retried insert is cut differently. The rows themselves say what is durable.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from aiokafka import AIOKafkaConsumer, ConsumerRebalanceListener, TopicPartition

from pulse.warehouse.client import Warehouse

log = logging.getLogger(__name__)

_NEXT_OFFSETS = """
SELECT kafka_partition, max(next_offset)
FROM consumed_offsets
WHERE kafka_epoch = {epoch:String}
GROUP BY kafka_partition
"""


async def stored_next_offsets(warehouse: Warehouse, epoch: str) -> dict[int, int]:
    result = await warehouse.run(warehouse.client.query, _NEXT_OFFSETS, parameters={"epoch": epoch})
    return {int(partition): int(offset) for partition, offset in result.result_rows}


class SeekToStored(ConsumerRebalanceListener):  # type: ignore[misc]
    """On every assignment, position each partition after what ClickHouse already holds."""

    def __init__(
        self,
        consumer: AIOKafkaConsumer,
        warehouse: Warehouse,
        epoch: str,
        on_assignment: Callable[[], None] = lambda: None,
    ) -> None:
        self._consumer = consumer
        self._warehouse = warehouse
        self._epoch = epoch
        self._on_assignment = on_assignment

    async def on_partitions_revoked(self, revoked: list[TopicPartition]) -> None:
        """Nothing to flush: a batch is committed before the next poll can rebalance."""

    async def on_partitions_assigned(self, assigned: list[TopicPartition]) -> None:
        self._on_assignment()
        if not assigned:
            return
        stored = await stored_next_offsets(self._warehouse, self._epoch)
        ends = await self._consumer.end_offsets(list(assigned))
        for tp in assigned:
            offset = stored.get(tp.partition)
            if offset is None:
                continue
            if offset > ends[tp]:
                # The topic was recreated under the same epoch: these offsets mean other events.
                log.error(
                    "ClickHouse holds partition %s up to offset %s but the topic ends at %s; "
                    "the topic was recreated: set PULSE_KAFKA_EPOCH to a new value. "
                    "Reading from Kafka's committed offset instead.",
                    tp.partition,
                    offset,
                    ends[tp],
                )
                continue
            self._consumer.seek(tp, offset)
