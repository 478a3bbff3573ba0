"""Rollup worker: Kafka batch → ClickHouse insert → Redis live state → commit.

The order is the contract: offsets are committed only after ClickHouse accepted the
batch, so a crash replays the batch and never loses it. Rollups are maintained by
ClickHouse materialized views, not here.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Sequence

import msgspec
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRecord
from aiokafka.errors import KafkaError
from redis.exceptions import RedisError

from pulse.events.message import AnyEvent, decode
from pulse.kafka.topics import ensure_topics
from pulse.live.writer import LiveWriter
from pulse.rollup.rows import COLUMNS, dedup_token, to_row
from pulse.settings import Settings
from pulse.telemetry.metrics import Metrics
from pulse.telemetry.tracing import Tracing
from pulse.warehouse.client import Warehouse

log = logging.getLogger(__name__)


class RollupWorker:
    def __init__(
        self, settings: Settings, warehouse: Warehouse, live: LiveWriter, metrics: Metrics, tracing: Tracing
    ) -> None:
        self._settings = settings
        self._warehouse = warehouse
        self._live = live
        self._metrics = metrics
        self._tracing = tracing
        self._lag: dict[tuple[str, int], int] = {}
        metrics.add_lag_source(lambda: dict(self._lag))
        self.connected = False

    async def run(self, stop: asyncio.Event) -> None:
        consumer, dlq = await self._connect(stop)
        if consumer is None or dlq is None:
            return
        try:
            while not stop.is_set():
                batches = await consumer.getmany(
                    timeout_ms=self._settings.rollup_poll_ms, max_records=self._settings.rollup_batch_max
                )
                records = [r for tp_records in batches.values() for r in tp_records]
                if records:
                    await self._process(records, dlq, stop)
                    await consumer.commit()
                await self._measure_lag(consumer)
        finally:
            await consumer.stop()
            await dlq.stop()

    async def _connect(self, stop: asyncio.Event) -> tuple[AIOKafkaConsumer | None, AIOKafkaProducer | None]:
        delay = 0.2
        while not stop.is_set():
            consumer = AIOKafkaConsumer(
                self._settings.topic_raw,
                bootstrap_servers=self._settings.kafka_bootstrap_servers,
                group_id=self._settings.consumer_group,
                enable_auto_commit=False,
                auto_offset_reset="earliest",
                fetch_max_wait_ms=self._settings.rollup_fetch_wait_ms,
            )
            dlq = AIOKafkaProducer(bootstrap_servers=self._settings.kafka_bootstrap_servers, acks="all")
            try:
                await ensure_topics(self._settings)
                await consumer.start()
                await dlq.start()
            except KafkaError as exc:
                log.warning("broker not reachable yet (%s); retrying in %.1fs", exc, delay)
                await consumer.stop()
                await dlq.stop()
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)
                continue
            self.connected = True
            return consumer, dlq
        return None, None

    async def _measure_lag(self, consumer: AIOKafkaConsumer) -> None:
        lag = {}
        for tp in consumer.assignment():
            end = consumer.highwater(tp)
            if end is not None:
                lag[(tp.topic, tp.partition)] = max(0, end - await consumer.position(tp))
        self._lag = lag

    async def _process(
        self, records: Sequence[ConsumerRecord], dlq: AIOKafkaProducer, stop: asyncio.Event
    ) -> None:
        events: list[AnyEvent] = []
        rows = []
        for record in records:
            try:
                event = decode(record.value)
            except (msgspec.DecodeError, msgspec.ValidationError) as exc:
                await self._dead_letter(dlq, record, f"undecodable: {exc}")
                continue
            events.append(event)
            rows.append(to_row(event, record.partition, record.offset))
        if not events:
            return
        parent, links = self._tracing.batch_context([r.headers for r in records])
        with self._tracing.span("rollup.batch", context=parent, links=links) as span:
            if span is not None:
                span.set_attribute("pulse.events", len(events))
            with self._tracing.span("clickhouse.insert"):
                await self._insert(rows, dedup_token(events), stop)
            self._observe_durable(events)
            with self._tracing.span("redis.live_update"):
                await self._update_live(events)

    def _observe_durable(self, events: Sequence[AnyEvent]) -> None:
        now_ms = time.time() * 1000
        newest = max(e.ts_ms for e in events)
        self._metrics.event_delay.record(max(0.0, now_ms - min(e.ts_ms for e in events)))
        self._metrics.saw_event(newest)

    async def _update_live(self, events: Sequence[AnyEvent]) -> None:
        started = time.perf_counter()
        try:
            await self._live.apply(events)
        except RedisError as exc:
            log.warning("live state not updated (%s); ClickHouse has the events", exc)
            return
        self._metrics.redis_latency.record((time.perf_counter() - started) * 1000, {"op": "live_update"})

    async def _insert(self, rows: list[list[object]], token: str, stop: asyncio.Event) -> None:
        delay = 0.5
        while True:
            started = time.perf_counter()
            try:
                await self._warehouse.insert("events", rows, COLUMNS, token)
            except Exception as exc:
                self._metrics.rollup_insert_errors.add(1)
                if stop.is_set():
                    raise
                log.warning("ClickHouse insert failed (%s); retrying the same batch in %.1fs", exc, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 10.0)
                continue
            self._metrics.rollup_insert_latency.record((time.perf_counter() - started) * 1000)
            self._metrics.rollup_batch_size.record(len(rows))
            self._metrics.rollup_events.add(len(rows))
            return

    async def _dead_letter(self, dlq: AIOKafkaProducer, record: ConsumerRecord, reason: str) -> None:
        self._metrics.events_dropped.add(1, {"reason": "poison_message"})
        self._metrics.dlq_messages.add(1)
        await dlq.send_and_wait(
            self._settings.topic_dlq,
            record.value,
            key=record.key,
            headers=[
                ("reason", reason[:500].encode()),
                ("source", f"{record.topic}/{record.partition}/{record.offset}".encode()),
            ],
        )
