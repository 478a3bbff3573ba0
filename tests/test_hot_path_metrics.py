"""The per-request instruments export what Prometheus expects of a counter and a histogram."""

from __future__ import annotations

from prometheus_client import CollectorRegistry
from prometheus_client.exposition import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from pulse.telemetry.hot_path import HotCounter, HotHistogram


def _samples(registry: CollectorRegistry) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    text = generate_latest(registry).decode()
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def test_histogram_buckets_are_cumulative_and_inclusive_of_their_bound() -> None:
    registry = CollectorRegistry()
    latency = HotHistogram("latency_milliseconds", "t", ("route",), (1, 5, 10), registry)
    for value in (0.5, 1, 5, 7, 50):
        latency.record_values(value, ("/api/event",))
    latency.record(3, {"route": "/api/events"})
    samples = _samples(registry)
    route = ("route", "/api/event")
    assert [
        samples[("latency_milliseconds_bucket", (("le", le), route))] for le in ("1.0", "5.0", "10.0", "+Inf")
    ] == [
        2,
        3,
        4,
        5,
    ]
    assert samples[("latency_milliseconds_count", (route,))] == 5
    assert samples[("latency_milliseconds_sum", (route,))] == 63.5
    assert samples[("latency_milliseconds_count", (("route", "/api/events"),))] == 1


def test_counter_adds_per_label_values_and_exports_a_total() -> None:
    registry = CollectorRegistry()
    requests = HotCounter("http_server_requests", "r", ("status",), registry)
    requests.add_values(1, ("202",))
    requests.add(2, {"status": "202"})
    requests.add(1, {"status": "429"})
    samples = _samples(registry)
    assert samples[("http_server_requests_total", (("status", "202"),))] == 3
    assert samples[("http_server_requests_total", (("status", "429"),))] == 1


def test_disabled_instruments_record_nothing_and_register_nothing() -> None:
    counter = HotCounter("off_total", "o", (), None)
    histogram = HotHistogram("off_ms", "o", (), (1,), None)
    counter.add(1)
    histogram.record(1)
    assert next(iter(counter.collect())).samples == []
    assert next(iter(histogram.collect())).samples == []
