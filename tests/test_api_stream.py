"""GET /api/v1/sites/{id}/stream: the site's live ticks as Server-Sent Events for bearer-token clients."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import httpx
import msgspec

from stack import Stack
from visitor import BROWSER


async def _next_event(lines: AsyncIterator[str], wanted: str) -> str:
    """The data of the next event named `wanted`."""
    event = None
    async for line in lines:
        if line.startswith("event: "):
            event = line.removeprefix("event: ")
        elif line.startswith("data: ") and event == wanted:
            return line.removeprefix("data: ")
    raise AssertionError(f"stream ended without a {wanted} event")


async def test_a_client_sees_ready_then_a_tick_after_a_beacon(stack: Stack) -> None:
    tenant = await stack.tenant("Streamed")
    site = tenant.site.id
    headers = {"authorization": f"Bearer {await stack.token(tenant)}"}
    async with (
        httpx.AsyncClient(base_url=stack.dashboard, headers=headers, timeout=30) as api,
        api.stream("GET", f"/api/v1/sites/{site}/stream") as stream,
    ):
        assert stream.status_code == 200
        assert stream.headers["content-type"].startswith("text/event-stream")
        lines = stream.aiter_lines()
        assert await asyncio.wait_for(_next_event(lines, "ready"), timeout=10) == "{}"
        async with httpx.AsyncClient(base_url=stack.collector, headers=BROWSER) as collector:
            beacon = msgspec.json.encode({"s": site, "u": "https://streamed.example/"})
            assert (await collector.post("/api/event", content=beacon)).status_code == 202
        tick = msgspec.json.decode(await asyncio.wait_for(_next_event(lines, "tick"), timeout=15))
    assert tick["site_id"] == site
    assert tick["pageviews"] == 1


async def test_the_stream_needs_a_token_of_the_sites_tenant(stack: Stack) -> None:
    mine, theirs = await stack.tenant("Watcher"), await stack.tenant("Watched stream")
    async with httpx.AsyncClient(base_url=stack.dashboard, timeout=10) as client:
        anonymous = await client.get(f"/api/v1/sites/{mine.site.id}/stream")
        assert anonymous.status_code == 401
        headers = {"authorization": f"Bearer {await stack.token(mine)}"}
        other = await client.get(f"/api/v1/sites/{theirs.site.id}/stream", headers=headers)
        assert other.status_code == 404
        assert other.headers["content-type"].startswith("application/json")


async def test_a_key_without_stats_read_may_not_stream(stack: Stack) -> None:
    tenant = await stack.tenant("Writer only")
    async with httpx.AsyncClient(
        base_url=stack.dashboard, headers={"authorization": f"Bearer {await stack.token(tenant)}"}, timeout=10
    ) as api:
        created = await api.post("/api/v1/keys", json={"name": "ingest", "permissions": ["events:write"]})
        assert created.status_code == 201, created.text
        exchanged = await api.post("/api/v1/token", json={"api_key": created.json()["secret"]})
        token = exchanged.json()["token"]
        refused = await api.get(
            f"/api/v1/sites/{tenant.site.id}/stream", headers={"authorization": f"Bearer {token}"}
        )
    assert refused.status_code == 403
    assert refused.json()["missing_permission"] == "stats:read"
