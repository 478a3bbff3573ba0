"""Two rollup workers in one consumer group: one joins and leaves under load, every event counts once.

Each membership change revokes partitions from a worker that may be mid-batch (aiokafka
rebalances in a background task); the batch must reach ClickHouse before the partition's next
owner reads where to start.
"""

from __future__ import annotations

import asyncio
import time
import uuid

import msgspec
import pytest
from aiokafka import AIOKafkaProducer

from pulse.embedded.services import free_port
from pulse.events.message import EventV1, encode, partition_key
from pulse.kafka.partitioning import keyed_partitioner
from pulse.roles import run_roles
from pulse.warehouse.client import Warehouse
from stack import Stack
from visitor import USER_AGENT

RATE = 400
LOAD_S = 14.0
# The producer must reach a share of its rate: no other test takes the cores meanwhile.
pytestmark = pytest.mark.serial


async def _produce(stack: Stack, tenant_id: str, site_id: str, stop: asyncio.Event) -> int:
    producer = AIOKafkaProducer(
        bootstrap_servers=stack.settings.kafka_bootstrap_servers, acks="all", partitioner=keyed_partitioner
    )
    await producer.start()
    sent = 0
    try:
        while not stop.is_set():
            started = time.monotonic()
            deliveries = []
            for i in range(RATE // 10):
                event = EventV1(
                    event_id=uuid.uuid4().bytes,
                    tenant_id=tenant_id,
                    site_id=site_id,
                    ts_ms=int(time.time() * 1000),
                    name="pageview",
                    url=f"https://group.example/{i % 7}",
                    referrer="",
                    visitor_id=(sent + i) % 300,
                    user_agent=USER_AGENT,
                    screen_width=1280,
                    props={},
                )
                deliveries.append(
                    await producer.send(stack.settings.topic_raw, encode(event), key=partition_key(event))
                )
            for delivery in deliveries:
                await delivery
            sent += len(deliveries)
            await asyncio.sleep(max(0.0, 0.1 - (time.monotonic() - started)))
    finally:
        await producer.stop()
    return sent


async def test_a_worker_joining_and_leaving_the_group_under_load_leaves_every_event_counted_once(
    stack: Stack,
) -> None:
    tenant = await stack.tenant("Group")
    warehouse = Warehouse(stack.settings.effective_clickhouse_url, stack.settings.clickhouse_database)
    second = msgspec.structs.replace(stack.settings, rollup_port=free_port())
    stop_load, stop_second = asyncio.Event(), asyncio.Event()
    load = asyncio.create_task(_produce(stack, tenant.tenant_id, tenant.site.id, stop_load))
    try:
        await asyncio.sleep(2)
        joined = asyncio.create_task(run_roles(second, ["rollup"], stop_second))
        await asyncio.sleep(LOAD_S / 2)
        stop_second.set()
        await asyncio.wait_for(joined, 30)
        await asyncio.sleep(LOAD_S / 2 - 2)
    finally:
        stop_load.set()
        sent = await load
        stop_second.set()

    async def stored() -> tuple[int, int]:
        sql = "SELECT count(), uniqExact(event_id) FROM events WHERE tenant_id = {t:String}"
        rows = await warehouse.run(warehouse.client.query, sql, parameters={"t": tenant.tenant_id})
        count, distinct = rows.result_rows[0]
        return int(count), int(distinct)

    # Events counted twice, by partition and offset range, to say where a failure came from.
    twice = (
        "SELECT kafka_partition, min(kafka_offset), max(kafka_offset), count() FROM "
        "(SELECT event_id, any(kafka_partition) AS kafka_partition, any(kafka_offset) AS kafka_offset "
        "FROM events WHERE tenant_id = {t:String} GROUP BY event_id HAVING count() > 1) GROUP BY kafka_partition"
    )
    assert await stack.wait_for(stored, (sent, sent), timeout_s=60) == (sent, sent)
    # Nothing arrives late a second time either.
    await asyncio.sleep(2)
    rows = (
        await warehouse.run(warehouse.client.query, twice, parameters={"t": tenant.tenant_id})
    ).result_rows
    assert await stored() == (sent, sent), rows
    assert sent > RATE * LOAD_S * 0.5
