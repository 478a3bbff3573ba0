"""SIGTERM drains: requests in flight are answered and their events counted; streams end; exit 0."""

from __future__ import annotations

import asyncio
import itertools
import signal
import time
from pathlib import Path

import httpx
import msgspec
import pytest

from dashboard_client import login
from load_balancer import Collector
from pulse.embedded.services import free_port
from pulse.roles import run_roles
from stack import Stack
from visitor import BROWSER

# A drain under load of 50 clients, and a stop timed in seconds: with no other test beside them.
pytestmark = pytest.mark.serial


async def test_sigterm_answers_every_request_in_flight_and_each_202_is_counted(
    stack: Stack, tmp_path: Path
) -> None:
    tenant = await stack.tenant("Drained")
    collector = Collector(stack.settings, tmp_path, "collector")
    await collector.healthy()
    answers: list[tuple[int | str, float]] = []
    numbers = itertools.count()
    signalled, busy = asyncio.Event(), asyncio.Event()

    async def client_loop(client: httpx.AsyncClient) -> None:
        # One event after another until the collector is gone, as a busy site's visitors send.
        while True:
            i = next(numbers)
            body = f'{{"s": "{tenant.site.id}", "u": "https://drained.example/{i}", "x": "drain-{i}"}}'
            try:
                response = await client.post("/api/event", content=body)
            except httpx.HTTPError as exc:
                answers.append((type(exc).__name__, time.monotonic()))
                if signalled.is_set():
                    return
                continue
            answers.append((response.status_code, time.monotonic()))
            if len(answers) >= 200:
                busy.set()

    limits = httpx.Limits(max_connections=50)
    async with httpx.AsyncClient(
        base_url=collector.url, headers=BROWSER, limits=limits, timeout=30
    ) as client:
        loops = [asyncio.create_task(client_loop(client)) for _ in range(50)]
        await asyncio.wait_for(busy.wait(), 30)
        signalled.set()
        at = time.monotonic()
        collector.process.send_signal(signal.SIGTERM)
        await asyncio.wait_for(asyncio.gather(*loops), 30)
    exit_code = await asyncio.to_thread(collector.process.wait, 30)

    statuses = [status for status, _ in answers]
    accepted = statuses.count(202)
    assert exit_code == 0, collector.log.read_text()
    # Nothing but 202s and, once the collector stopped taking connections, transport errors.
    assert all(s == 202 or isinstance(s, str) for s in statuses), statuses
    # Requests in flight at the signal were answered, not cut.
    assert any(status == 202 and ended > at for status, ended in answers), answers[-60:]
    expected = {"pageviews": accepted}
    assert await stack.counts(tenant, expected, timeout_s=60) == expected


async def test_stopping_a_dashboard_ends_its_live_streams_and_returns_promptly(stack: Stack) -> None:
    """What SIGTERM does in `pulse run` (it sets the stop event), with a live view open."""
    tenant = await stack.tenant("Closing")
    settings = msgspec.structs.replace(stack.settings, dashboard_port=free_port())
    stop = asyncio.Event()
    running = asyncio.create_task(run_roles(settings, ["dashboard"], stop))
    url = settings.dashboard_url
    try:
        async with httpx.AsyncClient(base_url=url, follow_redirects=True, timeout=30) as client:
            for _ in range(100):
                try:
                    if (await client.get("/healthz")).status_code == 200:
                        break
                except httpx.HTTPError:
                    await asyncio.sleep(0.1)
            await login(client, tenant.email, tenant.password)
            async with client.stream("GET", f"/sites/{tenant.site.id}/live") as stream:
                lines = stream.aiter_lines()
                assert (await anext(lines)).startswith("event: ready")
                started = time.monotonic()
                stop.set()
                rest = [line async for line in lines]
                ended_s = time.monotonic() - started
            await asyncio.wait_for(running, 15)
            stopped_s = time.monotonic() - started
    finally:
        stop.set()
    assert all(not line.startswith("event: tick") for line in rest)
    assert ended_s < 5, ended_s
    assert stopped_s < 10, stopped_s
