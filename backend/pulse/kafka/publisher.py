"""The collector's way into Kafka: acknowledged writes or a clear refusal.

Concurrent requests share the producer's batches (linger), so awaiting each event's
acknowledgement does not serialise requests; a request is answered 202 only once its
own events are acknowledged by the broker (acks=all).

After the broker failed a write, acknowledgements are trusted again only once the topics are
known to exist: the broker that answers may be a new, empty one. Kafka refuses writes to a
missing topic until it is created; Tansu with memory storage acknowledges them and serves
them to no consumer until the topic is created.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Sequence

from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError

from pulse.breaker import CircuitBreaker, DependencyDown
from pulse.events.message import AnyEvent, encode, partition_key
from pulse.kafka.partitioning import keyed_partitioner
from pulse.kafka.topics import ensure_topics
from pulse.settings import Settings
from pulse.telemetry.metrics import Metrics
from pulse.telemetry.tracing import KafkaHeaders

log = logging.getLogger(__name__)


class BrokerUnavailable(Exception):
    """Kafka did not acknowledge in time; the caller must not claim the events were kept."""

    reason = "broker_unavailable"
    retry_after_s = 5


class Overloaded(BrokerUnavailable):
    """Too many events await acknowledgement; refusing more keeps memory bounded."""

    reason = "overloaded"
    retry_after_s = 1


class EventPublisher:
    def __init__(self, settings: Settings, metrics: Metrics) -> None:
        self._settings = settings
        self._metrics = metrics
        self._producer: AIOKafkaProducer | None = None
        self._connecting: asyncio.Task[None] | None = None
        self._in_flight = 0
        # False from a failed write until ensure_topics succeeds again; _connect_forever ensures first.
        self._topics_ensured = True
        self._ensuring: asyncio.Task[None] | None = None
        self._next_ensure = 0.0
        # Without it, while the broker is down every request would wait out produce_timeout_s.
        self._breaker = CircuitBreaker("kafka", metrics, failures=3, open_s=settings.breaker_open_s)

    async def start(self) -> None:
        """Connect in the background so the collector serves (with 503s) while the broker is down.

        The first producer is built here, so a configuration it rejects stops the start.
        """
        self._connecting = asyncio.create_task(self._connect_forever(self._new_producer()))

    def _new_producer(self) -> AIOKafkaProducer:
        compression = self._settings.produce_compression
        return AIOKafkaProducer(
            bootstrap_servers=self._settings.kafka_bootstrap_servers,
            acks="all",
            linger_ms=2,
            compression_type=None if compression == "none" else compression,
            request_timeout_ms=int(self._settings.produce_timeout_s * 1000),
            max_batch_size=256 * 1024,
            partitioner=keyed_partitioner,
        )

    async def _connect_forever(self, producer: AIOKafkaProducer) -> None:
        delay = 0.2
        while self._producer is None:
            try:
                await ensure_topics(self._settings)
                await producer.start()
            except KafkaError as exc:
                log.warning("broker not reachable yet (%s); retrying in %.1fs", exc, delay)
                await producer.stop()
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)
                producer = self._new_producer()
            else:
                self._producer = producer

    @property
    def ready(self) -> bool:
        return self._producer is not None

    async def publish(self, events: Sequence[AnyEvent], headers: KafkaHeaders | None = None) -> None:
        producer = self._producer
        if producer is None:
            raise BrokerUnavailable("not connected to the broker")
        if self._in_flight + len(events) > self._settings.max_in_flight_events:
            raise Overloaded(f"{self._in_flight} events await the broker's acknowledgement")
        started = time.perf_counter()
        self._in_flight += len(events)
        try:
            await self._breaker.call(
                lambda: self._send(producer, events, headers), (KafkaError, TimeoutError, BrokerUnavailable)
            )
        except DependencyDown as exc:
            raise BrokerUnavailable(
                f"the broker failed repeatedly; it is asked again in {exc.retry_after_s:.0f}s"
            ) from exc
        except (KafkaError, TimeoutError) as exc:
            self._topics_ensured = False
            self._metrics.produce_errors.add(1)
            raise BrokerUnavailable(str(exc) or type(exc).__name__) from exc
        finally:
            self._in_flight -= len(events)
        self._metrics.produce_latency.record((time.perf_counter() - started) * 1000)

    async def _send(
        self, producer: AIOKafkaProducer, events: Sequence[AnyEvent], headers: KafkaHeaders | None
    ) -> None:
        topic = self._settings.topic_raw
        async with asyncio.timeout(self._settings.produce_timeout_s):
            if not self._topics_ensured:
                await self._topics_exist()
            futures = [
                await producer.send(topic, encode(event), key=partition_key(event), headers=headers)
                for event in events
            ]
            await (futures[0] if len(futures) == 1 else asyncio.gather(*futures))

    async def _topics_exist(self) -> None:
        """After a write failed, every caller waits for one shared ensure_topics.

        After one fails, callers are refused for a second instead of each starting another
        against a broker that is down.
        """
        if self._ensuring is None or self._ensuring.done():
            if time.monotonic() < self._next_ensure:
                raise BrokerUnavailable("the broker failed; its topics are not confirmed yet")
            self._ensuring = asyncio.create_task(self._ensure_topics_again())
        # Shielded: one caller's timeout must not cancel the check the others wait for.
        await asyncio.shield(self._ensuring)

    async def _ensure_topics_again(self) -> None:
        try:
            async with asyncio.timeout(self._settings.produce_timeout_s):
                await ensure_topics(self._settings)
        except BaseException:
            self._next_ensure = time.monotonic() + 1.0
            raise
        self._topics_ensured = True

    async def stop(self) -> None:
        if self._connecting is not None:
            self._connecting.cancel()
        if self._ensuring is not None:
            self._ensuring.cancel()
        if self._producer is not None:
            await self._producer.stop()
