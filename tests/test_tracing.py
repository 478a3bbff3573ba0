"""With OTEL_EXPORTER_OTLP_ENDPOINT set, one trace spans collector → Kafka → worker → ClickHouse insert."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.trace.v1.trace_pb2 import Span

from pulse.embedded.services import free_port
from up_process import UpProcess, login_from_banner
from visitor import BROWSER


class Receiver:
    """An OTLP/HTTP endpoint that keeps every span it is sent."""

    def __init__(self) -> None:
        self.spans: list[Span] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["content-length"]))
                request = ExportTraceServiceRequest()
                request.ParseFromString(body)
                for resource in request.resource_spans:
                    for scope in resource.scope_spans:
                        receiver.spans.extend(scope.spans)
                self.send_response(200)
                self.send_header("content-type", "application/x-protobuf")
                self.end_headers()

            def log_message(self, *_: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", free_port()), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"

    def named(self, name: str) -> list[Span]:
        return [span for span in self.spans if span.name == name]


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    receiver = Receiver()
    thread = threading.Thread(target=receiver.server.serve_forever, daemon=True)
    thread.start()
    yield receiver
    receiver.server.shutdown()


def test_a_beacon_trace_reaches_the_clickhouse_insert(tmp_path: Path, receiver: Receiver) -> None:
    collector_port = free_port()
    up = UpProcess(
        tmp_path / "home",
        collector_port,
        free_port(),
        extra_env={"OTEL_EXPORTER_OTLP_ENDPOINT": receiver.url},
    )
    try:
        _, _, site = login_from_banner(up.output)
        body = f'{{"s": "{site}", "u": "https://traced.example/"}}'
        assert (
            httpx.post(
                f"http://127.0.0.1:{collector_port}/api/event", content=body, headers=BROWSER, timeout=30
            ).status_code
            == 202
        )
        deadline = time.monotonic() + 30
        while not receiver.named("clickhouse.insert") and time.monotonic() < deadline:
            time.sleep(0.2)
    finally:
        code, rest = up.interrupt()
    assert code == 0, rest
    (ingest,) = receiver.named("collector.ingest")
    batch = receiver.named("rollup.batch")[0]
    insert = receiver.named("clickhouse.insert")[0]
    assert batch.trace_id == ingest.trace_id
    assert batch.parent_span_id == ingest.span_id
    assert insert.trace_id == ingest.trace_id
    assert insert.parent_span_id == batch.span_id
