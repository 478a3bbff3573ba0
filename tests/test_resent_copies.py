"""A resent event (same sender id `x`) is counted once, by the worker that stored it or by the
partition's next owner."""

from __future__ import annotations

import asyncio
import time
import uuid

import httpx
import msgspec
from aiokafka import AIOKafkaProducer

from fake_clock import FakeClock
from pulse.collector.ingest import sent_event_id
from pulse.embedded.services import free_port
from pulse.events.message import EventV1, encode, partition_key
from pulse.kafka.partitioning import keyed_partitioner
from pulse.roles import run_roles
from pulse.rollup.resent import ResentCopies
from stack import Stack
from visitor import BROWSER, USER_AGENT


def test_ids_are_remembered_for_the_window_then_forgotten() -> None:
    clock = FakeClock()
    copies = ResentCopies(window_s=100, max_ids=1_000, clock=clock)
    copies.remember([b"a" * 16])
    clock.now = 60
    copies.remember([b"b" * 16])
    assert copies.seen(b"a" * 16)
    assert copies.seen(b"b" * 16)
    clock.now = 101
    copies.remember([])
    assert not copies.seen(b"a" * 16)
    assert copies.seen(b"b" * 16)
    assert len(copies) == 1


def test_memory_is_bounded_by_dropping_the_oldest_ids_first() -> None:
    clock = FakeClock()
    copies = ResentCopies(window_s=100, max_ids=25, clock=clock)
    for second in range(5):
        clock.now = second * 10
        copies.remember(uuid.uuid4().bytes for _ in range(10))
    newest = uuid.uuid4().bytes
    copies.remember([newest])
    assert len(copies) <= 25
    assert copies.seen(newest)


def test_a_sent_id_names_one_event_of_one_visitor() -> None:
    assert sent_event_id("site", 7, 0.25) == sent_event_id("site", 7, 0.25)
    assert sent_event_id("site", 7, 0.25) != sent_event_id("site", 8, 0.25)
    assert sent_event_id("site", 7, 0.25) != sent_event_id("other", 7, 0.25)
    assert sent_event_id("site", 7, 0.25) != sent_event_id("site", 7, "0.25")


async def test_a_beacon_sent_twice_with_its_id_counts_once(stack: Stack) -> None:
    tenant = await stack.tenant("Resent")
    site = tenant.site.id
    with_id = f'{{"s": "{site}", "u": "https://resent.example/a", "x": 0.123456789}}'
    other_id = f'{{"s": "{site}", "u": "https://resent.example/b", "x": "server-7"}}'
    without_id = f'{{"s": "{site}", "u": "https://resent.example/c"}}'
    async with httpx.AsyncClient(base_url=stack.collector, headers=BROWSER) as client:
        for body in (with_id, with_id, without_id, without_id):
            assert (await client.post("/api/event", content=body)).status_code == 202
        # Both copies in one request: they reach the worker in one batch.
        batch = f"[{other_id}, {other_id}]"
        assert (await client.post("/api/events", content=batch)).status_code == 202
    # a once, b once, c twice: without an id, two sends are two events.
    assert await stack.counts(tenant, {"pageviews": 4}) == {"pageviews": 4}
    await asyncio.sleep(1)
    assert await stack.counts(tenant, {"pageviews": 4}) == {"pageviews": 4}


def _event(tenant_id: str, site_id: str, visitor: int, event_id: bytes) -> EventV1:
    return EventV1(
        event_id=event_id,
        tenant_id=tenant_id,
        site_id=site_id,
        ts_ms=0,
        name="pageview",
        url=f"https://moved.example/{visitor}",
        referrer="",
        visitor_id=visitor,
        user_agent=USER_AGENT,
        screen_width=1280,
        props={},
    )


async def test_copies_reaching_a_partitions_next_owner_count_once(stack: Stack) -> None:
    """A second worker joins: the partitions it takes over come with no memory of their own,
    so it reads the window's stored ids back from ClickHouse before it reads the partition."""
    tenant = await stack.tenant("Moved")
    visitors = range(60)
    ids = {v: uuid.uuid4().bytes for v in visitors}
    producer = AIOKafkaProducer(
        bootstrap_servers=stack.settings.kafka_bootstrap_servers, acks="all", partitioner=keyed_partitioner
    )

    async def send(events: list[EventV1]) -> None:
        for event in events:
            now = msgspec.structs.replace(event, ts_ms=int(time.time() * 1000))
            await producer.send_and_wait(stack.settings.topic_raw, encode(now), key=partition_key(now))

    originals = [_event(tenant.tenant_id, tenant.site.id, v, ids[v]) for v in visitors]
    second = msgspec.structs.replace(stack.settings, rollup_port=free_port())
    stop_second = asyncio.Event()
    await producer.start()
    try:
        await send(originals)
        assert await stack.counts(tenant, {"pageviews": 60}) == {"pageviews": 60}
        joined = asyncio.create_task(run_roles(second, ["rollup"], stop_second))
        try:
            # Tansu takes a few seconds to settle a group; the copies follow the rebalance.
            await asyncio.sleep(8)
            fresh = [_event(tenant.tenant_id, tenant.site.id, 1000 + v, uuid.uuid4().bytes) for v in range(5)]
            await send(originals + fresh)
            assert await stack.counts(tenant, {"pageviews": 65}) == {"pageviews": 65}
            await asyncio.sleep(2)
            assert await stack.counts(tenant, {"pageviews": 65}) == {"pageviews": 65}
        finally:
            stop_second.set()
            await asyncio.wait_for(joined, 30)
    finally:
        await producer.stop()
