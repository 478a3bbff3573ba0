"""Rollup worker: Kafka batch → ClickHouse insert → Redis live state → commit.

The order is the contract: offsets are committed only after ClickHouse accepted the
batch, so a crash replays the batch and never loses it; and a worker assigned a partition
starts after the highest offset ClickHouse holds for it (rollup/offsets.py), so a batch that
was inserted but not committed is not read again. Rollups are maintained by ClickHouse
materialized views, not here. A tenant on a database of its own has its events written there,
in an order that keeps this true (rollup/placement.py).

Replayed events (`events.replay`, pulse/replay) are read only while live traffic has no lag,
one bounded batch between live polls, and go to their replay's staging table.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from collections.abc import Awaitable, Callable, Sequence

import msgspec
from aiokafka import (
    AIOKafkaConsumer,
    AIOKafkaProducer,
    ConsumerRebalanceListener,
    ConsumerRecord,
    TopicPartition,
)
from aiokafka.errors import CommitFailedError, KafkaError
from clickhouse_connect.driver.exceptions import ClickHouseError
from opentelemetry.metrics import Counter
from redis.exceptions import RedisError
from sqlalchemy.exc import SQLAlchemyError

from pulse.enrichment.bots import is_bot
from pulse.events.message import AnyEvent, decode
from pulse.kafka.topics import ensure_topics
from pulse.live.writer import LiveWriter
from pulse.replay.emit import REPLAY_HEADER
from pulse.replay.staging import staging_exists, staging_table
from pulse.rollup.live_restore import restore_live_window
from pulse.rollup.offsets import SeekToStored
from pulse.rollup.placement import Part, Placement
from pulse.rollup.resent import ResentCopies, stored_recently
from pulse.rollup.retention import TenantRetention
from pulse.rollup.rows import COLUMNS, dedup_token, to_row
from pulse.rollup.sessions import DAY_MS, SessionMark, Sessions
from pulse.settings import Settings
from pulse.telemetry.metrics import Metrics
from pulse.telemetry.tracing import Tracing
from pulse.warehouse.client import Warehouse
from pulse.warehouse.routing import TenantDatabaseRouting

log = logging.getLogger(__name__)


class _OnAssignment(ConsumerRebalanceListener):  # type: ignore[misc]
    def __init__(self, assigned: Callable[[], None]) -> None:
        self._assigned = assigned

    async def on_partitions_revoked(self, revoked: list[TopicPartition]) -> None:
        """Nothing to wait for: a replayed batch staged twice (by this worker and the partition's
        next owner) is folded by the staging table."""

    async def on_partitions_assigned(self, assigned: list[TopicPartition]) -> None:
        # Another worker may have moved these visitors' replayed sessions on meanwhile.
        self._assigned()


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
        databases: TenantDatabaseRouting,
    ) -> None:
        self._settings = settings
        self._warehouse = warehouse
        self._databases = databases
        self._placement = Placement(warehouse, databases, settings.kafka_epoch)
        self._live = live
        self._metrics = metrics
        self._tracing = tracing
        self._sessions = sessions
        self._retention = retention
        self._lag: dict[tuple[str, int], int] = {}
        self._last_live_batch = 0
        # Held from the end of each poll to its commit, and by rebalances (rollup/offsets.py).
        self._batch = asyncio.Lock()
        self._assignments = 0
        self._sought: dict[int, int] = {}
        self._replay_sessions: dict[str, Sessions] = {}
        self._staging_known: set[str] = set()
        self._resent = ResentCopies(settings.rollup_resend_window_s, settings.rollup_resend_max_ids)
        self._stop = asyncio.Event()
        metrics.add_lag_source(lambda: dict(self._lag))
        self.connected = False

    async def _assigned(self, sought: dict[int, int]) -> None:
        self._assignments += 1
        self._sought = sought
        self._sessions.forget()
        self._placement.forget()
        window = self._settings.rollup_resend_window_s
        own = await self._retrying("tenant databases", self._databases.databases, self._stop)
        recent = await self._retrying(
            "recent event ids",
            lambda: stored_recently(self._warehouse, self._settings.kafka_epoch, list(sought), window, own),
            self._stop,
        )
        self._resent.remember(recent)

    def _read_again(
        self, consumer: AIOKafkaConsumer, batches: dict[TopicPartition, list[ConsumerRecord]]
    ) -> None:
        """A batch polled while the group rebalanced may predate the seek to ClickHouse's offsets or
        follow it: either way, its partitions are read again from where ClickHouse says."""
        assigned = consumer.assignment()
        for tp, records in batches.items():
            if records and tp in assigned:
                consumer.seek(tp, self._sought.get(tp.partition, records[0].offset))

    async def _commit(self, consumer: AIOKafkaConsumer) -> None:
        try:
            await consumer.commit()
        except CommitFailedError:
            # The group is rebalancing. ClickHouse holds the batch and its offsets, which is
            # where the next owner of these partitions starts; Kafka's offset only trails them.
            log.info("offset commit skipped: the group is rebalancing")

    def caught_up(self) -> bool:
        """Live traffic has no lag: the last poll was not a full batch and every partition is at its end."""
        return (
            self.connected
            and self._last_live_batch < self._settings.rollup_batch_max
            and all(lag == 0 for lag in self._lag.values())
        )

    async def run(self, stop: asyncio.Event) -> None:
        self._stop = stop
        await self._restore_live()
        consumers = await self._connect(stop)
        if consumers is None:
            return
        consumer, replay, dlq = consumers
        try:
            while not stop.is_set():
                assignment = self._assignments
                batches = await consumer.getmany(
                    timeout_ms=self._settings.rollup_poll_ms, max_records=self._settings.rollup_batch_max
                )
                # Taken with no await since the poll returned. aiokafka holds getmany while the group
                # rebalances, so the lock cannot be held there: the rebalance waits for it.
                async with self._batch:
                    if assignment != self._assignments:
                        self._read_again(consumer, batches)
                        continue
                    records = [r for tp_records in batches.values() for r in tp_records]
                    self._last_live_batch = len(records)
                    if records:
                        await self._process(records, dlq, stop)
                        await self._commit(consumer)
                await self._measure_lag(consumer)
                if self.caught_up():
                    await self._replay_step(replay, dlq, stop)
        finally:
            await consumer.stop()
            await replay.stop()
            await dlq.stop()

    async def _connect(
        self, stop: asyncio.Event
    ) -> tuple[AIOKafkaConsumer, AIOKafkaConsumer, AIOKafkaProducer] | None:
        delay = 0.2
        while not stop.is_set():
            consumer = self._consumer(self._settings.consumer_group)
            replay = self._consumer(f"{self._settings.consumer_group}.replay")
            dlq = AIOKafkaProducer(bootstrap_servers=self._settings.kafka_bootstrap_servers, acks="all")
            try:
                await ensure_topics(self._settings)
                await consumer.start()
                consumer.subscribe(
                    [self._settings.topic_raw],
                    listener=SeekToStored(
                        consumer, self._warehouse, self._settings.kafka_epoch, self._batch, self._assigned
                    ),
                )
                await replay.start()
                replay.subscribe(
                    [self._settings.topic_replay], listener=_OnAssignment(self._replay_sessions.clear)
                )
                await dlq.start()
            except KafkaError as exc:
                log.warning("broker not reachable yet (%s); retrying in %.1fs", exc, delay)
                await consumer.stop()
                await replay.stop()
                await dlq.stop()
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)
                continue
            self.connected = True
            return consumer, replay, dlq
        return None

    def _consumer(self, group: str) -> AIOKafkaConsumer:
        return AIOKafkaConsumer(
            bootstrap_servers=self._settings.kafka_bootstrap_servers,
            group_id=group,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            fetch_max_wait_ms=self._settings.rollup_fetch_wait_ms,
        )

    async def _replay_step(
        self, replay: AIOKafkaConsumer, dlq: AIOKafkaProducer, stop: asyncio.Event
    ) -> None:
        """One batch of replayed events into their replays' staging tables; at least once is enough:
        staging folds duplicates."""
        batches = await replay.getmany(timeout_ms=0, max_records=self._settings.rollup_batch_max)
        records = [r for tp_records in batches.values() for r in tp_records]
        if not records:
            return
        by_job: dict[str, list[tuple[ConsumerRecord, AnyEvent]]] = {}
        for record in records:
            job_id = dict(record.headers or ()).get(REPLAY_HEADER, b"").decode("ascii", "replace")
            try:
                event = decode(record.value)
                staging_table(job_id)
            except (msgspec.DecodeError, msgspec.ValidationError, ValueError) as exc:
                await self._dead_letter(dlq, record, f"unreadable replayed event: {exc}")
                continue
            by_job.setdefault(job_id, []).append((record, event))
        for job_id, kept in by_job.items():
            await self._stage(job_id, kept, stop)
        await replay.commit()

    async def _stage(
        self, job_id: str, kept: list[tuple[ConsumerRecord, AnyEvent]], stop: asyncio.Event
    ) -> None:
        if job_id not in self._staging_known:
            if not await self._retrying(
                "replay staging lookup", lambda: staging_exists(self._warehouse, job_id), stop
            ):
                self._replay_finished(job_id, len(kept))
                return
            self._staging_known.add(job_id)
        sessions = self._replay_sessions.setdefault(
            job_id, self._sessions.namespaced(f"replay:{job_id}:", ttl_ms=DAY_MS)
        )
        events = [event for _, event in kept]
        marks = await self._retrying("replay session assignment", lambda: sessions.assign(events), stop)
        rows = await self._rows(kept, marks, f"replay-{job_id}")

        async def insert() -> bool:
            try:
                await self._warehouse.insert(
                    staging_table(job_id), rows, COLUMNS, f"{job_id}:{dedup_token(events)}"
                )
            except ClickHouseError:
                if await staging_exists(self._warehouse, job_id):
                    raise
                return False
            return True

        if not await self._retrying(
            "replay staging insert", insert, stop, self._metrics.rollup_insert_errors
        ):
            self._replay_finished(job_id, len(kept))

    def _replay_finished(self, job_id: str, events: int) -> None:
        """The replay was swapped in and its staging dropped (or never started): these are copies
        emitted a second time by a worker that took the job over, and are already counted."""
        self._metrics.events_dropped.add(events, {"reason": "replay_finished"})
        self._staging_known.discard(job_id)
        self._replay_sessions.pop(job_id, None)

    async def _restore_live(self) -> None:
        try:
            own = await self._databases.databases()
            seconds, visitors = await restore_live_window(self._warehouse, self._live, own)
        except (RedisError, ClickHouseError, SQLAlchemyError, OSError) as exc:
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
        kept = self._first_copies(kept)
        if not kept:
            return
        # Before sessions: an event a tenant's own database holds already must not open one again.
        routed = await self._retrying("tenant routing", lambda: self._placement.route(kept), stop)
        if routed.already_stored:
            self._metrics.events_dropped.add(routed.already_stored, {"reason": "already_stored"})
        stored = [(record, event) for record, event, _ in routed.events]
        events = [event for _, event in stored]
        parent, links = self._tracing.batch_context([r.headers for r in records])
        with self._tracing.span("rollup.batch", context=parent, links=links) as span:
            if span is not None:
                span.set_attribute("pulse.events", len(events))
            marks = await self._retrying("session assignment", lambda: self._sessions.assign(events), stop)
            rows = await self._rows(stored, marks, self._settings.kafka_epoch)
            with self._tracing.span("clickhouse.insert"):
                await self._insert(self._placement.parts(routed, rows, records, dedup_token(events)), stop)
            self._resent.remember(event.event_id for _, event in kept)
            if events:
                self._observe_durable(events)
                with self._tracing.span("redis.live_update"):
                    await self._update_live(events)

    def _first_copies(
        self, kept: list[tuple[ConsumerRecord, AnyEvent]]
    ) -> list[tuple[ConsumerRecord, AnyEvent]]:
        """Drops copies of an event already stored, or already earlier in this batch (pulse.rollup.resent)."""
        first: list[tuple[ConsumerRecord, AnyEvent]] = []
        # Taken as already seen, so that a later copy in this batch is dropped too.
        batch = self._resent.stored_among({event.event_id for _, event in kept})
        for record, event in kept:
            if event.event_id in batch:
                continue
            batch.add(event.event_id)
            first.append((record, event))
        if len(first) < len(kept):
            self._metrics.events_dropped.add(len(kept) - len(first), {"reason": "resent_copy"})
        return first

    async def _rows(
        self, kept: list[tuple[ConsumerRecord, AnyEvent]], marks: list[SessionMark], epoch: str
    ) -> list[list[object]]:
        retention = await self._retention.current({event.tenant_id for _, event in kept})
        return [
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

    def _observe_durable(self, events: Sequence[AnyEvent]) -> None:
        now_ms = time.time() * 1000
        times = [e.ts_ms for e in events]
        newest = max(times)
        self._metrics.event_delay.record(max(0.0, now_ms - min(times)))
        self._metrics.saw_event(newest)

    async def _update_live(self, events: Sequence[AnyEvent]) -> None:
        started = time.perf_counter()
        try:
            await self._live.apply(events)
        except RedisError as exc:
            log.warning("live state not updated (%s); ClickHouse has the events", exc)
            return
        self._metrics.redis_latency.record((time.perf_counter() - started) * 1000, {"op": "live_update"})

    async def _insert(self, parts: list[Part], stop: asyncio.Event) -> None:
        """One part after another, in the order placement gives (rollup/placement.py)."""
        started = time.perf_counter()
        for part in parts:
            await self._retrying(
                "ClickHouse insert",
                functools.partial(self._placement.write, part),
                stop,
                self._metrics.rollup_insert_errors,
            )
        events = sum(len(part.rows) for part in parts if part.table == "events")
        self._metrics.rollup_insert_latency.record((time.perf_counter() - started) * 1000)
        self._metrics.rollup_batch_size.record(events)
        self._metrics.rollup_events.add(events)

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
