"""Rollup worker: Kafka batch → ClickHouse insert → Redis live state → commit.

The order is the contract: offsets are committed only after ClickHouse accepted the
batch, so a crash replays the batch and never loses it; and a worker assigned a partition
starts after the highest offset ClickHouse holds for it (rollup/offsets.py), so a batch that
was inserted but not committed is not read again. Rollups are maintained by ClickHouse
materialized views, not here.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Sequence

import msgspec
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRecord
from aiokafka.errors import KafkaError
from clickhouse_connect.driver.exceptions import ClickHouseError
from opentelemetry.metrics import Counter
from redis.exceptions import RedisError

from pulse.enrichment.bots import is_bot
from pulse.events.message import AnyEvent, decode
from pulse.kafka.topics import ensure_topics
from pulse.live.writer import LiveWriter
from pulse.rollup.live_restore import restore_live_window
from pulse.rollup.offsets import SeekToStored
from pulse.rollup.retention import TenantRetention
from pulse.rollup.rows import COLUMNS, dedup_token, to_row
from pulse.rollup.sessions import Sessions
from pulse.settings import Settings
from pulse.telemetry.metrics import Metrics
from pulse.telemetry.tracing import Tracing
from pulse.warehouse.client import Warehouse

log = logging.getLogger(__name__)


class RollupWorker:
    def __init__(
        self,
        settings: Settings,
        warehouse: Warehouse,
        live: LiveWriter,
        sessions: Sessions,
        retention: TenantRetention,
        metrics: Metrics,
        tracing: Tracing,
    ) -> None:
        self._settings = settings
        self._warehouse = warehouse
        self._live = live
        self._metrics = metrics
        self._tracing = tracing
        self._sessions = sessions
        self._retention = retention
        self._lag: dict[tuple[str, int], int] = {}
        metrics.add_lag_source(lambda: dict(self._lag))
        self.connected = False

    async def run(self, stop: asyncio.Event) -> None:
        await self._restore_live()
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
                consumer.subscribe(
                    [self._settings.topic_raw],
                    listener=SeekToStored(
                        consumer, self._warehouse, self._settings.kafka_epoch, self._sessions.forget
                    ),
                )
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

    async def _restore_live(self) -> None:
        try:
            seconds, visitors = await restore_live_window(self._warehouse, self._live)
        except (RedisError, ClickHouseError) as exc:
            log.warning("live window not restored (%s); it fills again as events arrive", exc)
            return
        log.info(
            "live window restored from ClickHouse: %d per-second counters, %d visitors", seconds, visitors
        )

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
        kept: list[tuple[ConsumerRecord, AnyEvent]] = []
        for record in records:
            try:
                event = decode(record.value)
            except (msgspec.DecodeError, msgspec.ValidationError) as exc:
                await self._dead_letter(dlq, record, f"undecodable: {exc}")
                continue
            # The collector drops bots already; other producers (collectors/) may not.
            if is_bot(event.user_agent):
                self._metrics.events_dropped.add(1, {"reason": "bot"})
                continue
            kept.append((record, event))
        if not kept:
            return
        events = [event for _, event in kept]
        parent, links = self._tracing.batch_context([r.headers for r in records])
        with self._tracing.span("rollup.batch", context=parent, links=links) as span:
            if span is not None:
                span.set_attribute("pulse.events", len(events))
            marks = await self._retrying("session assignment", lambda: self._sessions.assign(events), stop)
            epoch = self._settings.kafka_epoch
            retention = await self._retention.current({event.tenant_id for event in events})
            rows = [
                to_row(
                    event,
                    record.partition,
                    record.offset,
                    epoch,
                    mark,
                    TenantRetention.of(retention, event.tenant_id),
                )
                for (record, event), mark in zip(kept, marks, strict=True)
            ]
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
        started = time.perf_counter()

        async def insert() -> None:
            await self._warehouse.insert("events", rows, COLUMNS, token)

        await self._retrying("ClickHouse insert", insert, stop, self._metrics.rollup_insert_errors)
        self._metrics.rollup_insert_latency.record((time.perf_counter() - started) * 1000)
        self._metrics.rollup_batch_size.record(len(rows))
        self._metrics.rollup_events.add(len(rows))

    async def _retrying[T](
        self,
        what: str,
        attempt: Callable[[], Awaitable[T]],
        stop: asyncio.Event,
        errors: Counter | None = None,
    ) -> T:
        """Pause the batch (offsets stay where they are) until its step succeeds: nothing is lost."""
        delay = 0.5
        while True:
            try:
                return await attempt()
            except Exception as exc:
                if errors is not None:
                    errors.add(1)
                if stop.is_set():
                    raise
                log.warning("%s failed (%s); retrying the same batch in %.1fs", what, exc, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 10.0)

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
