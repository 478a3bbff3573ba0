"""Raw rows of whole days → replayed events in `events.replay`, one hour of one day at a time.

Rows are read in time order, and keyed like live events (site + visitor), so each visitor's
events reach one worker in order, as sessionizing needs. What the worker derived the first time
travels with each event (Enrichment): raw rows keep no User-Agent to derive it from again.
A replay from an archive reads its loaded source table instead (pulse.replay.archive), whose
events do carry their User-Agent; the bots among them are left out, as the live path drops them.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterator, Sequence
from datetime import UTC, date, datetime, timedelta
from typing import Any

from aiokafka import AIOKafkaProducer

from pulse.enrichment.bots import is_bot
from pulse.enrichment.event import COLUMNS as ENRICHMENT_COLUMNS
from pulse.events.message import Enrichment, EventV1, encode, partition_key
from pulse.kafka.partitioning import keyed_partitioner
from pulse.oltp.replay_jobs import ReplayJob
from pulse.replay.archive import hour_of_archive
from pulse.settings import Settings
from pulse.warehouse.client import Warehouse

REPLAY_HEADER = "pulse-replay"

_SCOPE = """
tenant_id = {tenant:String}
AND site_id IN {sites:Array(String)}
AND toDate(ts) BETWEEN {first:Date} AND {last:Date}
"""

# Built from constants; every value is a bound parameter.
_COUNT = f"SELECT count() FROM events WHERE {_SCOPE}"  # noqa: S608

_HOUR = f"""
SELECT event_id, tenant_id, site_id, toUnixTimestamp64Milli(ts), name, hostname, pathname, referrer,
       visitor_id, screen_width, props, engagement_ms, country, {", ".join(ENRICHMENT_COLUMNS)}
FROM events
WHERE {_SCOPE} AND toStartOfHour(ts) = {{hour:DateTime('UTC')}}
ORDER BY ts
"""  # noqa: S608


def scope_parameters(job: ReplayJob) -> dict[str, Any]:
    return {
        "tenant": job.tenant_id,
        "sites": list(job.site_ids),
        "first": job.first_day,
        "last": job.last_day,
    }


async def count_events(warehouse: Warehouse, job: ReplayJob) -> int:
    result = await warehouse.run(warehouse.client.query, _COUNT, parameters=scope_parameters(job))
    return int(result.result_rows[0][0])


def hours(first: date, last: date) -> Iterator[datetime]:
    start = datetime(first.year, first.month, first.day, tzinfo=UTC)
    end = datetime(last.year, last.month, last.day, tzinfo=UTC) + timedelta(days=1)
    while start < end:
        yield start
        start += timedelta(hours=1)


def to_event(row: Sequence[Any]) -> EventV1:
    (event_id, tenant_id, site_id, ts_ms, name, hostname, pathname, referrer) = row[:8]
    (visitor_id, screen_width, props, engagement_ms, country) = row[8:13]
    return EventV1(
        event_id=event_id if isinstance(event_id, bytes) else str(event_id).encode("latin-1"),
        tenant_id=tenant_id,
        site_id=site_id,
        ts_ms=int(ts_ms),
        name=name,
        url=f"https://{hostname}{pathname}",
        referrer=referrer,
        visitor_id=int(visitor_id),
        user_agent="",
        screen_width=int(screen_width),
        props=dict(props),
        engagement_ms=int(engagement_ms),
        country=country,
        enrichment=Enrichment(*(str(value) for value in row[13:])),
    )


async def emit(
    settings: Settings,
    warehouse: Warehouse,
    job: ReplayJob,
    on_progress: Callable[[int], Awaitable[None]],
) -> int:
    """Produces every event of the job's scope (acks=all); returns how many."""
    producer = AIOKafkaProducer(
        bootstrap_servers=settings.kafka_bootstrap_servers,
        acks="all",
        linger_ms=20,
        compression_type=None if settings.produce_compression == "none" else settings.produce_compression,
        partitioner=keyed_partitioner,
        max_batch_size=256 * 1024,
    )
    await producer.start()
    headers = [(REPLAY_HEADER, job.id.encode())]
    emitted = 0
    try:
        for hour in hours(job.first_day, job.last_day):
            events = await _hour(warehouse, job, hour)
            if not events:
                continue
            sent = []
            for event in events:
                sent.append(
                    await producer.send(
                        settings.topic_replay, encode(event), key=partition_key(event), headers=headers
                    )
                )
            for delivery in sent:
                await delivery
            emitted += len(sent)
            await on_progress(emitted)
    finally:
        await producer.stop()
    return emitted


async def _hour(warehouse: Warehouse, job: ReplayJob, hour: datetime) -> list[EventV1]:
    if job.archive:
        start_ms = int(hour.timestamp() * 1000)
        archived = await hour_of_archive(warehouse, job, start_ms, start_ms + 3_600_000)
        return [event for event in archived if not is_bot(event.user_agent)]
    result = await warehouse.run(
        warehouse.client.query, _HOUR, parameters={**scope_parameters(job), "hour": hour}
    )
    return [to_event(row) for row in result.result_rows]
