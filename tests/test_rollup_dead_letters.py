"""A poison message goes to events.dlq with its reason and does not block its partition."""

from __future__ import annotations

import httpx
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from stack import Stack
from visitor import BROWSER


async def test_poison_message_is_dead_lettered_and_later_events_still_count(stack: Stack) -> None:
    settings = stack.settings
    tenant = await stack.tenant("Poison")
    site = tenant.site.id
    dlq = AIOKafkaConsumer(
        settings.topic_dlq, bootstrap_servers=settings.kafka_bootstrap_servers, auto_offset_reset="latest"
    )
    await dlq.start()
    await dlq.seek_to_end()
    producer = AIOKafkaProducer(bootstrap_servers=settings.kafka_bootstrap_servers, acks="all")
    await producer.start()
    try:
        # Same key as the site's next beacon would not guarantee one partition, so poison every partition.
        for partition in range(settings.kafka_partitions):
            await producer.send_and_wait(settings.topic_raw, b"\xc1garbage", partition=partition)
    finally:
        await producer.stop()
    async with httpx.AsyncClient(base_url=stack.collector, headers=BROWSER) as client:
        for i in range(5):
            body = f'{{"s": "{site}", "u": "https://poison.example/{i}"}}'
            assert (await client.post("/api/event", content=body)).status_code == 202

    assert await stack.counts(tenant, {"events": 5}) == {"events": 5}

    try:
        letters = []
        for _ in range(30):
            if len(letters) >= settings.kafka_partitions:
                break
            batch = await dlq.getmany(timeout_ms=500)
            letters += [m for messages in batch.values() for m in messages if m.value == b"\xc1garbage"]
    finally:
        await dlq.stop()
    assert len(letters) == settings.kafka_partitions
    headers = dict(letters[0].headers)
    assert headers["reason"].startswith(b"undecodable")
    assert headers["source"].startswith(settings.topic_raw.encode())
