"""When Kafka cannot acknowledge, the collector answers 503 with Retry-After, never 202."""

from __future__ import annotations

import asyncio

import httpx
import msgspec

from pulse.collector.app import create_collector_app
from pulse.embedded.services import free_port, start_broker
from stack import Stack, serving
from visitor import BROWSER


async def test_unreachable_broker_gets_503_with_retry_after(stack: Stack) -> None:
    site = (await stack.tenant("NoBroker")).site.id
    settings = msgspec.structs.replace(
        stack.settings, kafka_bootstrap_servers=f"127.0.0.1:{free_port()}", produce_timeout_s=1.0
    )
    async with (
        serving(create_collector_app(settings), free_port()) as url,
        httpx.AsyncClient(base_url=url, headers=BROWSER) as client,
    ):
        health = (await client.get("/healthz")).json()
        response = await client.post("/api/event", content=f'{{"s": "{site}", "u": "https://a.example/"}}')
    assert health["dependencies"] == {"kafka": False}
    assert response.status_code == 503
    assert response.headers["retry-after"] == "5"
    assert "retry later" in response.json()["error"]


async def test_broker_lost_after_start_gets_503_not_202(stack: Stack) -> None:
    site = (await stack.tenant("LostBroker")).site.id
    broker, bootstrap = start_broker(stack.settings.home / "lost-broker")
    settings = msgspec.structs.replace(
        stack.settings, kafka_bootstrap_servers=bootstrap, produce_timeout_s=2.0
    )
    body = f'{{"s": "{site}", "u": "https://a.example/"}}'
    try:
        async with (
            serving(create_collector_app(settings), free_port()) as url,
            httpx.AsyncClient(base_url=url, timeout=15, headers=BROWSER) as client,
        ):
            for _ in range(50):
                if (await client.get("/healthz")).json()["dependencies"]["kafka"]:
                    break
                await asyncio.sleep(0.1)
            assert (await client.post("/api/event", content=body)).status_code == 202
            broker.stop()
            response = await client.post("/api/event", content=body)
    finally:
        broker.stop()
    assert response.status_code == 503
    assert response.headers["retry-after"] == "5"
