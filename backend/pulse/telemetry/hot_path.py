"""Per-request instruments on prometheus_client's own counters and histograms.

The OpenTelemetry SDK costs about 9 µs per recorded value with attributes in CPython,
and a beacon records four: 15% of the collector's throughput in bench/metrics_overhead.py.
prometheus_client with cached label children costs about 1 µs, and writes into the same
registry /metrics serves, under the same names the OpenTelemetry exporter would use.
Everything recorded once per batch or per tick stays on the OpenTelemetry SDK.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from prometheus_client import REGISTRY, Counter, Histogram
from prometheus_client.registry import CollectorRegistry

Attributes = Mapping[str, str] | None


class HotCounter:
    def __init__(
        self, name: str, description: str, labels: Sequence[str], registry: CollectorRegistry | None
    ) -> None:
        self._labels = tuple(labels)
        self._metric = Counter(name, description, self._labels, registry=registry) if registry else None
        self._children: dict[tuple[str, ...], Counter] = {}

    def add(self, amount: float, attributes: Attributes = None) -> None:
        if self._metric is not None:
            _child(self._metric, self._children, self._labels, attributes).inc(amount)


class HotHistogram:
    def __init__(
        self,
        name: str,
        description: str,
        labels: Sequence[str],
        buckets: Sequence[float],
        registry: CollectorRegistry | None,
    ) -> None:
        self._labels = tuple(labels)
        self._metric = (
            Histogram(name, description, self._labels, buckets=tuple(buckets), registry=registry)
            if registry
            else None
        )
        self._children: dict[tuple[str, ...], Histogram] = {}

    def record(self, value: float, attributes: Attributes = None) -> None:
        if self._metric is not None:
            _child(self._metric, self._children, self._labels, attributes).observe(value)


def _child[M: (Counter, Histogram)](
    metric: M, children: dict[tuple[str, ...], M], labels: tuple[str, ...], attributes: Attributes
) -> M:
    """The label child for these attributes, looked up once and cached: `labels()` itself is slow."""
    key = tuple(attributes[label] for label in labels) if attributes else ()
    child = children.get(key)
    if child is None:
        child = children[key] = metric.labels(*key) if key else metric
    return child


def hot_registry(enabled: bool) -> CollectorRegistry | None:
    return REGISTRY if enabled else None
