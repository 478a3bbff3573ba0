"""Instruments shared by every role, exported in Prometheus format at /metrics.

OpenTelemetry SDK instruments, read by the Prometheus reader into prometheus_client's
registry; one MeterProvider per process, because a process may host several roles.
With metrics switched off the same instruments exist but record nothing.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable, Iterable, Mapping

from opentelemetry.exporter.prometheus import PrometheusMetricReader
from opentelemetry.metrics import (
    CallbackOptions,
    Counter,
    Histogram,
    MeterProvider,
    NoOpMeterProvider,
    Observation,
    UpDownCounter,
)
from opentelemetry.sdk.metrics import MeterProvider as SdkMeterProvider
from opentelemetry.sdk.metrics.view import ExplicitBucketHistogramAggregation, View
from opentelemetry.sdk.resources import Resource
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, generate_latest
from prometheus_client.registry import CollectorRegistry

from pulse.telemetry.hot_path import HotCounter, HotHistogram, hot_registry

# Milliseconds, from a cache hit to a minutes-old backlog, so freshness alerts have buckets to work with.
LATENCY_BUCKETS_MS = (
    1,
    2,
    5,
    10,
    25,
    50,
    100,
    250,
    500,
    1000,
    2500,
    5000,
    10000,
    30000,
    60000,
    120000,
    300000,
)
SIZE_BUCKETS = (1, 10, 50, 100, 500, 1000, 2500, 5000, 10000, 50000)

# Every reason an event can be refused or discarded; each is a label of events_dropped_total.
DROP_REASONS = (
    "invalid",
    "too_large",
    "unknown_site",
    "site_disabled",
    "host_not_allowed",
    "bot",
    "rate_limited_ip",
    "rate_limited_site",
    "broker_unavailable",
    "overloaded",
    "poison_message",
    "resent_copy",
)

LagSource = Callable[[], Mapping[tuple[str, int], int]]


class Metrics:
    def __init__(self, provider: MeterProvider, hot: CollectorRegistry | None) -> None:
        meter = provider.get_meter("pulse")
        self._lag_sources: list[LagSource] = []
        self._newest_event_ms = 0
        self.http_requests = HotCounter(
            "http_server_requests",
            "HTTP requests by role, route, method and status",
            ("role", "route", "method", "status"),
            hot,
        )
        self.http_duration = HotHistogram(
            "http_server_duration_milliseconds",
            "Time to the first byte of the response",
            ("role", "route", "method"),
            LATENCY_BUCKETS_MS,
            hot,
        )
        self.events_accepted = HotCounter(
            "events_accepted", "Events acknowledged by Kafka and answered 202", (), hot
        )
        self.events_dropped: Counter = meter.create_counter(
            "events_dropped", unit="1", description="Events refused or discarded, by reason"
        )
        self.produce_latency = HotHistogram(
            "kafka_produce_latency_milliseconds",
            "Time until Kafka acknowledged a request's events",
            (),
            LATENCY_BUCKETS_MS,
            hot,
        )
        self.produce_errors: Counter = meter.create_counter(
            "kafka_produce_errors", unit="1", description="Produce attempts that failed or timed out"
        )
        self.rollup_batch_size: Histogram = meter.create_histogram(
            "rollup_batch_events", unit="1", description="Events per ClickHouse insert"
        )
        self.rollup_insert_latency: Histogram = meter.create_histogram(
            "rollup_insert_latency", unit="ms", description="ClickHouse insert time per batch"
        )
        self.rollup_insert_errors: Counter = meter.create_counter(
            "rollup_insert_errors", unit="1", description="ClickHouse inserts that failed and were retried"
        )
        self.rollup_events: Counter = meter.create_counter(
            "rollup_events", unit="1", description="Events written to ClickHouse by the rollup worker"
        )
        self.event_delay: Histogram = meter.create_histogram(
            "rollup_event_delay", unit="ms", description="Age of an event when its batch became durable"
        )
        self.dlq_messages: Counter = meter.create_counter(
            "dlq_messages", unit="1", description="Poison messages moved to the dead-letter topic"
        )
        self.redis_latency: Histogram = meter.create_histogram(
            "redis_latency", unit="ms", description="Redis round trips of the live layer, by operation"
        )
        self.sse_clients: UpDownCounter = meter.create_up_down_counter(
            "sse_clients", unit="1", description="Connected live-view clients"
        )
        self.sse_ticks: Counter = meter.create_counter(
            "sse_ticks", unit="1", description="Ticks delivered to live-view clients"
        )
        self.breaker_transitions: Counter = meter.create_counter(
            "breaker_transitions",
            unit="1",
            description="Circuit breakers opening (a dependency keeps failing) and closing again, by dependency",
        )
        meter.create_observable_gauge(
            "kafka_consumer_lag",
            callbacks=[self._observe_lag],
            unit="1",
            description="Messages between a partition's end and the worker's position",
        )
        meter.create_observable_gauge(
            "rollup_newest_event_age",
            callbacks=[self._observe_newest],
            unit="s",
            description="Age of the newest event written to ClickHouse",
        )

        self._start_at_zero()

    def _start_at_zero(self) -> None:
        """Series that exist before the first failure, so dashboards and alerts read 0, not "no data"."""
        for reason in DROP_REASONS:
            self.events_dropped.add(0, {"reason": reason})
        for counter in (self.produce_errors, self.rollup_insert_errors, self.dlq_messages, self.sse_ticks):
            counter.add(0)
        self.sse_clients.add(0)

    def add_lag_source(self, source: LagSource) -> None:
        self._lag_sources.append(source)

    def saw_event(self, ts_ms: int) -> None:
        self._newest_event_ms = max(self._newest_event_ms, ts_ms)

    def _observe_lag(self, _: CallbackOptions) -> Iterable[Observation]:
        for source in self._lag_sources:
            for (topic, partition), lag in source().items():
                yield Observation(lag, {"topic": topic, "partition": str(partition)})

    def _observe_newest(self, _: CallbackOptions) -> Iterable[Observation]:
        if self._newest_event_ms:
            yield Observation(time.time() - self._newest_event_ms / 1000)


def _views() -> list[View]:
    latency = ExplicitBucketHistogramAggregation(LATENCY_BUCKETS_MS)
    names = (
        "rollup_insert_latency",
        "rollup_event_delay",
        "redis_latency",
    )
    views = [View(instrument_name=name, aggregation=latency) for name in names]
    views.append(
        View(
            instrument_name="rollup_batch_events",
            aggregation=ExplicitBucketHistogramAggregation(SIZE_BUCKETS),
        )
    )
    return views


@functools.cache
def process_metrics(enabled: bool = True) -> Metrics:
    if not enabled:
        return Metrics(NoOpMeterProvider(), hot_registry(enabled=False))
    provider = SdkMeterProvider(
        resource=Resource.create({"service.name": "pulse"}),
        metric_readers=[PrometheusMetricReader()],
        views=_views(),
    )
    return Metrics(provider, hot_registry(enabled=True))


def render_prometheus() -> tuple[bytes, str]:
    return generate_latest(REGISTRY), CONTENT_TYPE_LATEST
