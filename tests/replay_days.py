"""Past days of visits for replay tests, seeded through Kafka as a backlog the worker catches up on."""

from __future__ import annotations

import asyncio
import os
import sys
import uuid
from datetime import UTC, date, datetime, timedelta

from aiokafka import AIOKafkaProducer

from pulse.events.message import EventV1, encode, partition_key
from pulse.kafka.partitioning import keyed_partitioner
from pulse.oltp.replay_jobs import ReplayJob, ReplayJobs
from pulse.replay.request import follow
from pulse.warehouse.client import Warehouse
from stack import Stack, Tenant
from visitor import USER_AGENT

MINUTE_MS = 60_000
REFERRERS = ("", "https://www.google.com/search?q=pulse", "https://news.ycombinator.com/item?id=1")


def midnight_ms(day: date) -> int:
    return int(datetime(day.year, day.month, day.day, tzinfo=UTC).timestamp() * 1000)


def day_events(tenant_id: str, site_id: str, today: date) -> list[EventV1]:
    """Two past days of visits (one running across their midnight) and a little of today."""
    first, second = today - timedelta(days=2), today - timedelta(days=1)
    visits: list[tuple[int, list[tuple[int, str]]]] = []
    for visitor in range(6):
        start = midnight_ms(first) + (2 + 3 * visitor) * 3_600_000
        visits.append((visitor, [(start + i * 4 * MINUTE_MS, f"/page/{i}") for i in range(visitor % 3 + 1)]))
    midnight = midnight_ms(second)
    visits.append((10, [(midnight - 10 * MINUTE_MS, "/late"), (midnight + 5 * MINUTE_MS, "/after-midnight")]))
    visits.append((11, [(midnight + 9 * 3_600_000, "/"), (midnight + 9 * 3_600_000 + MINUTE_MS, "/pricing")]))
    now_ms = int(datetime.now(UTC).timestamp() * 1000)
    visits.append((12, [(max(midnight_ms(today), now_ms - 1000), "/today")]))
    events = []
    for visitor, pages in visits:
        for i, (ts_ms, path) in enumerate(pages):
            events.append(
                EventV1(
                    event_id=uuid.uuid4().bytes,
                    tenant_id=tenant_id,
                    site_id=site_id,
                    ts_ms=ts_ms,
                    name="pageview",
                    url=f"https://replay.example{path}?utm_campaign=autumn",
                    referrer=REFERRERS[visitor % 3] if i == 0 else f"https://replay.example{pages[i - 1][1]}",
                    visitor_id=1000 + visitor,
                    user_agent=USER_AGENT,
                    screen_width=1280,
                    props={},
                    country="DE",
                )
            )
        last = pages[-1][0]
        if visitor % 2 == 0 and last + MINUTE_MS < now_ms:
            events.append(
                EventV1(
                    event_id=uuid.uuid4().bytes,
                    tenant_id=tenant_id,
                    site_id=site_id,
                    ts_ms=last + 30_000,
                    name="signup",
                    url=f"https://replay.example{pages[-1][1]}",
                    referrer="",
                    visitor_id=1000 + visitor,
                    user_agent=USER_AGENT,
                    screen_width=1280,
                    props={"plan": "pro"},
                    country="DE",
                    engagement_ms=12_000,
                )
            )
    return events


async def seed(stack: Stack, warehouse: Warehouse, tenants: list[Tenant], today: date) -> list[EventV1]:
    """Produces past-dated events as a backlog the worker catches up on; returns them."""
    sites = []
    for tenant in tenants:
        second = await stack.accounts.create_site(tenant.tenant_id, "Second site", "second.example")
        sites += [(tenant.tenant_id, tenant.site.id), (tenant.tenant_id, second.id)]
    events = [event for tenant_id, site_id in sites for event in day_events(tenant_id, site_id, today)]
    producer = AIOKafkaProducer(
        bootstrap_servers=stack.settings.kafka_bootstrap_servers, acks="all", partitioner=keyed_partitioner
    )
    await producer.start()
    try:
        for event in events:
            await producer.send(stack.settings.topic_raw, encode(event), key=partition_key(event))
        await producer.flush()
    finally:
        await producer.stop()
    tenant_ids = [t.tenant_id for t in tenants]
    expected = [len(events)] * len(TOTALS)
    stored = await stack.wait_for(lambda: totals(warehouse, tenant_ids), expected, timeout_s=60)
    assert stored == expected
    return events


# Events as each table counts them. A view's rows become visible a moment after the raw rows.
TOTALS = (
    "SELECT count() FROM events",
    "SELECT sum(events) FROM stats_minute",
    "SELECT sum(events) FROM stats_hour",
    "SELECT sum(events) FROM stats_day",
    "SELECT sum(events) FROM traffic_hour WHERE dimension = 'page'",
    "SELECT sum(events) FROM traffic_day WHERE dimension = 'page'",
    "SELECT sum(events) FROM sessions",
)


async def totals(warehouse: Warehouse, tenant_ids: list[str]) -> list[int]:
    totals = []
    for sql in TOTALS:
        query = f"{sql} {'AND' if 'WHERE' in sql else 'WHERE'} tenant_id IN {{t:Array(String)}}"
        result = await warehouse.run(warehouse.client.query, query, parameters={"t": tenant_ids})
        totals.append(int(result.result_rows[0][0]))
    return totals


async def pulse(stack: Stack, *args: str) -> tuple[int, str]:
    """The `pulse` command in a process of its own, as an operator runs it."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PULSE_")}
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "pulse",
        *args,
        env={**env, "PULSE_HOME": str(stack.settings.home)},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    output, _ = await asyncio.wait_for(process.communicate(), 120)
    return process.returncode or 0, output.decode()


async def done(jobs: ReplayJobs, job: ReplayJob) -> ReplayJob:
    async def last() -> ReplayJob:
        async for seen in follow(jobs, job.id, interval_s=0.2):
            final = seen
        return final

    return await asyncio.wait_for(last(), 90)
