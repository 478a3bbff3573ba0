"""A real Prometheus scrapes the running stack under load; every panel and alert query returns data."""

from __future__ import annotations

import asyncio
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import httpx
import msgspec
import pytest
from aiokafka import AIOKafkaProducer

from grafana_files import alert_measure, alert_rules, targets
from pulse.embedded.services import free_port, wait_for_port
from pulse.loadgen.runner import run_load
from pulse.loadgen.traffic import TrafficModel
from stack import Stack
from visitor import BROWSER

SCRAPE_CONFIG = """
global:
  scrape_interval: 1s
  evaluation_interval: 1s
scrape_configs:
"""


@pytest.fixture
def prometheus(stack: Stack, tmp_path: Path) -> Iterator[str]:
    binary = shutil.which("prometheus")
    if binary is None:
        pytest.fail(
            "prometheus is missing: the test command installs Debian's prometheus package (make test)"
        )
    settings = stack.settings
    config = SCRAPE_CONFIG + "".join(
        f"  - job_name: {job}\n    static_configs:\n      - targets: ['127.0.0.1:{port}']\n"
        for job, port in (
            ("collector", settings.collector_port),
            ("rollup", settings.rollup_port),
            ("dashboard", settings.dashboard_port),
        )
    )
    (tmp_path / "prometheus.yml").write_text(config)
    port = free_port()
    process = subprocess.Popen(
        [
            binary,
            f"--config.file={tmp_path / 'prometheus.yml'}",
            f"--storage.tsdb.path={tmp_path / 'data'}",
            f"--web.listen-address=127.0.0.1:{port}",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_for_port(port, process, "prometheus")
        yield f"http://127.0.0.1:{port}"
    finally:
        process.terminate()
        process.wait(timeout=20)


async def _poison(stack: Stack) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=stack.settings.kafka_bootstrap_servers, acks="all")
    await producer.start()
    try:
        await producer.send_and_wait(stack.settings.topic_raw, b"\x00not msgpack", key=b"poison")
    finally:
        await producer.stop()


async def _traffic(stack: Stack) -> None:
    tenant = await stack.tenant("Scraped")
    model = TrafficModel([(tenant.site.id, "scraped.example")], seed=3)
    async with httpx.AsyncClient(base_url=stack.collector, headers=BROWSER) as client:
        await client.post("/api/event", content=b'{"s": "no-such-site", "u": "https://x.example/"}')
        await client.post("/api/event", content=b"{broken")
    await _poison(stack)
    await run_load(stack.collector, model, rate=150, duration_s=6)


async def _query(client: httpx.AsyncClient, expr: str) -> list[object]:
    response = await client.get("/api/v1/query", params={"query": expr})
    body = response.json()
    assert body.get("status") == "success", f"{expr}: {body}"
    return list(body["data"]["result"])


async def test_every_panel_and_alert_query_returns_data(stack: Stack, prometheus: str) -> None:
    await _traffic(stack)
    await asyncio.sleep(3)
    queries = [
        (f"{dashboard} · {title}", target["expr"]) for dashboard, title, target in targets("prometheus")
    ]
    queries += [(f"alert {rule['alert']}", alert_measure(rule["expr"])) for rule in alert_rules()]
    assert len(queries) > 25
    async with httpx.AsyncClient(base_url=prometheus, timeout=10) as client:
        empty = [name for name, expr in queries if not await _query(client, expr)]
        accepted = await _query(client, "sum(rate(events_accepted_total[1m]))")
        dead = await _query(client, "sum(dlq_messages_total)")
    assert empty == []
    assert float(msgspec.convert(accepted[0], dict)["value"][1]) > 0
    assert float(msgspec.convert(dead[0], dict)["value"][1]) >= 1
