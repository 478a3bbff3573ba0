"""Traces that follow a beacon from the collector through Kafka to the ClickHouse insert.

Off unless OTEL_EXPORTER_OTLP_ENDPOINT is set; when off, no span is created and no
header is added, so the hot path pays nothing. The trace context travels in Kafka
message headers (W3C traceparent).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence

from opentelemetry import propagate, trace
from opentelemetry.context import Context
from opentelemetry.trace import Link, Span, Tracer

from pulse.settings import Settings

KafkaHeaders = list[tuple[str, bytes]]
MAX_LINKS = 32


class Tracing:
    def __init__(self, enabled: bool, tracer: Tracer | None = None) -> None:
        self.enabled = enabled
        self._tracer = tracer or trace.get_tracer("pulse")

    @contextlib.contextmanager
    def span(
        self, name: str, context: Context | None = None, links: Sequence[Link] = ()
    ) -> Iterator[Span | None]:
        if not self.enabled:
            yield None
            return
        with self._tracer.start_as_current_span(name, context=context, links=links) as span:
            yield span

    def headers(self) -> KafkaHeaders | None:
        """The current trace context as Kafka headers, or None when tracing is off."""
        if not self.enabled:
            return None
        carrier: dict[str, str] = {}
        propagate.inject(carrier)
        return [(key, value.encode()) for key, value in carrier.items()]

    def batch_context(
        self, batch_headers: Sequence[Sequence[tuple[str, bytes]] | None]
    ) -> tuple[Context | None, list[Link]]:
        """Parent is the first traced message; the rest of the batch is linked, up to MAX_LINKS."""
        if not self.enabled:
            return None, []
        contexts = []
        for headers in batch_headers:
            if headers:
                carrier = {key: value.decode(errors="replace") for key, value in headers}
                contexts.append(propagate.extract(carrier))
        if not contexts:
            return None, []
        links = []
        for ctx in contexts[1 : MAX_LINKS + 1]:
            span_context = trace.get_current_span(ctx).get_span_context()
            if span_context.is_valid:
                links.append(Link(span_context))
        return contexts[0], links


def configure_tracing(settings: Settings, service: str) -> Tracing:
    """Installs an OTLP/HTTP exporter for this process when an endpoint is configured."""
    if not settings.otel_exporter_otlp_endpoint:
        return Tracing(enabled=False)
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    provider = TracerProvider(resource=Resource.create({"service.name": service}))
    endpoint = settings.otel_exporter_otlp_endpoint.rstrip("/") + "/v1/traces"
    provider.add_span_processor(
        BatchSpanProcessor(OTLPSpanExporter(endpoint=endpoint), schedule_delay_millis=500)
    )
    trace.set_tracer_provider(provider)
    return Tracing(enabled=True, tracer=provider.get_tracer("pulse"))


def shutdown_tracing() -> None:
    provider = trace.get_tracer_provider()
    shutdown = getattr(provider, "shutdown", None)
    if callable(shutdown):
        shutdown()
