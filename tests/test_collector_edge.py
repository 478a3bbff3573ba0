"""The collector's edge: what it derives from the IP before dropping it, and what it refuses."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
import msgspec
from prometheus_client.parser import text_string_to_metric_families

from pulse.collector.app import create_collector_app
from pulse.embedded.services import free_port
from pulse.warehouse.client import Warehouse
from stack import Stack, serving
from visitor import BROWSER

GB_ADDRESS = "81.2.69.160"


def _beacon(site: str, url: str = "https://shop.example/") -> str:
    return msgspec.json.encode({"s": site, "u": url}).decode()


async def _dropped(client: httpx.AsyncClient, collector: str, reason: str) -> float:
    text = (await client.get(f"{collector}/metrics")).text
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == "events_dropped_total" and sample.labels.get("reason") == reason:
                return float(sample.value)
    return 0.0


@asynccontextmanager
async def _collector(stack: Stack, **overrides: Any) -> AsyncIterator[httpx.AsyncClient]:
    """A collector of its own with settings the shared stack must not have."""
    settings = msgspec.structs.replace(stack.settings, **overrides)
    async with (
        serving(create_collector_app(settings), free_port()) as url,
        httpx.AsyncClient(base_url=url, headers=BROWSER) as client,
    ):
        yield client


async def _rows(stack: Stack, site: str, expected: int) -> list[tuple[Any, ...]]:
    """The site's rows in the events table, once there are `expected` of them (or after 30 s)."""
    warehouse = Warehouse(stack.settings.effective_clickhouse_url, stack.settings.clickhouse_database)

    def query() -> list[tuple[Any, ...]]:
        sql = "SELECT * FROM events WHERE site_id = {site:String}"
        return list(warehouse.client.query(sql, parameters={"site": site}).result_rows)

    rows: list[tuple[Any, ...]] = []
    for _ in range(300):
        rows = await warehouse.run(query)
        if len(rows) >= expected:
            break
        await asyncio.sleep(0.1)
    return rows


async def test_country_is_derived_and_the_ip_is_stored_nowhere(stack: Stack) -> None:
    site = (await stack.tenant("Geo")).site.id
    async with httpx.AsyncClient(base_url=stack.collector, headers=BROWSER) as client:
        response = await client.post(
            "/api/event", content=_beacon(site), headers={"x-forwarded-for": GB_ADDRESS}
        )
    assert response.status_code == 202
    rows = await _rows(stack, site, 1)
    assert len(rows) == 1
    stored = " ".join(map(str, rows[0]))
    assert "GB" in rows[0]
    assert GB_ADDRESS not in stored
    assert "81.2.69" not in stored


async def test_bots_get_202_and_nothing_is_stored(stack: Stack) -> None:
    site = (await stack.tenant("Bots")).site.id
    before_offsets = await stack.raw_end_offsets()
    async with httpx.AsyncClient(base_url=stack.collector) as client:
        before = await _dropped(client, stack.collector, "bot")
        for agent in (
            "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)",
            "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) HeadlessChrome/131.0 Safari/537.36",
            "curl/8.5.0",
            "",
        ):
            response = await client.post("/api/event", content=_beacon(site), headers={"user-agent": agent})
            assert response.status_code == 202, agent
            assert response.json() == {"accepted": 0}
        assert await _dropped(client, stack.collector, "bot") == before + 4
    assert await stack.raw_end_offsets() == before_offsets


async def test_a_site_with_allowed_hosts_refuses_events_from_other_hosts(stack: Stack) -> None:
    tenant = await stack.tenant("Hosts")
    site = tenant.site.id
    await stack.accounts.set_allowed_hosts(tenant.tenant_id, site, ["shop.example", "*.shop.example"])
    async with httpx.AsyncClient(base_url=stack.collector, headers=BROWSER) as client:
        before = await _dropped(client, stack.collector, "host_not_allowed")
        for allowed in ("https://shop.example/", "https://blog.shop.example/a", "https://SHOP.example./"):
            assert (await client.post("/api/event", content=_beacon(site, allowed))).status_code == 202
        refused = await client.post("/api/event", content=_beacon(site, "https://copycat.example/"))
        batch = "[" + ",".join([_beacon(site), _beacon(site, "https://evilshop.example/")]) + "]"
        refused_batch = await client.post("/api/events", content=batch)
        assert await _dropped(client, stack.collector, "host_not_allowed") == before + 3
    assert refused.status_code == 403
    assert refused.json() == {
        "error": f"site '{site}' does not accept events from 'copycat.example'",
        "field": "$.u",
    }
    assert refused_batch.status_code == 403
    assert refused_batch.json()["field"] == "$[1].u"
    assert await stack.counts(tenant, {"events": 3}) == {"events": 3}


async def test_a_disabled_site_stops_ingesting_within_the_cache_ttl(stack: Stack) -> None:
    tenant = await stack.tenant("Disabled")
    site = tenant.site.id
    async with _collector(stack, site_cache_ttl_s=0.5) as client:
        assert (await client.post("/api/event", content=_beacon(site))).status_code == 202
        await stack.accounts.set_disabled(tenant.tenant_id, site, True)
        await asyncio.sleep(0.6)
        response = await client.post("/api/event", content=_beacon(site))
    assert response.status_code == 403
    assert response.json()["error"] == f"site '{site}' is disabled"


async def test_per_ip_rate_limit_answers_429_with_retry_after(stack: Stack) -> None:
    site = (await stack.tenant("IpLimit")).site.id
    async with _collector(stack, rate_limit_ip_per_s=0.5, rate_limit_ip_burst=3) as client:
        statuses = [
            (
                await client.post(
                    "/api/event", content=_beacon(site), headers={"x-forwarded-for": "198.51.100.1"}
                )
            )
            for _ in range(4)
        ]
        other = await client.post(
            "/api/event", content=_beacon(site), headers={"x-forwarded-for": "198.51.100.2"}
        )
        dropped = await _dropped(client, str(client.base_url), "rate_limited_ip")
    assert [r.status_code for r in statuses] == [202, 202, 202, 429]
    assert statuses[3].headers["retry-after"] == "2"
    assert "slow down" in statuses[3].json()["error"]
    assert other.status_code == 202
    assert dropped == 1


async def test_per_site_rate_limit_counts_events_not_requests(stack: Stack) -> None:
    site = (await stack.tenant("SiteLimit")).site.id
    async with _collector(
        stack, rate_limit_site_per_s=1, rate_limit_site_burst=5, rate_limit_ip_per_s=0
    ) as client:
        batch = "[" + ",".join([_beacon(site)] * 5) + "]"
        assert (await client.post("/api/events", content=batch)).status_code == 202
        limited = await client.post("/api/event", content=_beacon(site))
        dropped = await _dropped(client, str(client.base_url), "rate_limited_site")
    assert limited.status_code == 429
    assert int(limited.headers["retry-after"]) >= 1
    assert dropped == 1


async def test_a_full_in_flight_buffer_answers_503_instead_of_queueing(stack: Stack) -> None:
    site = (await stack.tenant("Backpressure")).site.id
    before_offsets = await stack.raw_end_offsets()
    async with _collector(stack, max_in_flight_events=3) as client:
        for _ in range(50):
            if (await client.get("/healthz")).json()["dependencies"]["kafka"]:
                break
            await asyncio.sleep(0.1)
        response = await client.post("/api/events", content="[" + ",".join([_beacon(site)] * 4) + "]")
        dropped = await _dropped(client, str(client.base_url), "overloaded")
    assert response.status_code == 503
    assert response.headers["retry-after"] == "1"
    assert dropped == 4
    assert await stack.raw_end_offsets() == before_offsets
