"""When Kafka cannot acknowledge, the collector answers 503 with Retry-After, never 202."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator

import httpx
import msgspec
import pytest

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


@contextlib.asynccontextmanager
async def _broker_lost(
    stack: Stack, name: str, **overrides: float
) -> AsyncIterator[tuple[httpx.AsyncClient, str]]:
    """A collector on a broker of its own that took one event (202), then lost the broker."""
    site = (await stack.tenant(name)).site.id
    broker, bootstrap = start_broker(stack.settings.home / f"{name.lower()}-broker")
    settings = msgspec.structs.replace(stack.settings, kafka_bootstrap_servers=bootstrap, **overrides)
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
            yield client, body
    finally:
        broker.stop()


async def test_broker_lost_after_start_gets_503_not_202(stack: Stack) -> None:
    async with _broker_lost(stack, "LostBroker", produce_timeout_s=2.0) as (client, body):
        response = await client.post("/api/event", content=body)
    assert response.status_code == 503
    assert response.headers["retry-after"] == "5"


@pytest.mark.serial  # answers timed in tenths of a second
async def test_after_a_few_timeouts_the_breaker_answers_503_at_once(stack: Stack) -> None:
    """Without the breaker every request would wait out produce_timeout_s while the broker is down."""
    answers = []
    async with _broker_lost(stack, "BreakerBroker", produce_timeout_s=1.0, breaker_open_s=30.0) as (
        client,
        body,
    ):
        for _ in range(6):
            started = time.perf_counter()
            response = await client.post("/api/event", content=body)
            answers.append((response.status_code, time.perf_counter() - started, response.json()["error"]))
    assert [status for status, _, _ in answers] == [503] * 6
    # The first failures each waited for the broker; once the breaker opened, no request did.
    opened = [i for i, (_, _, error) in enumerate(answers) if "failed repeatedly" in error]
    assert opened, answers
    assert all(seconds < 0.5 for _, seconds, _ in answers[opened[0] :]), answers
