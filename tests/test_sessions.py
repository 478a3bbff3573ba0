"""Sessions (30 minutes of inactivity ends one) and breakdown rollups, from beacon to API."""

from __future__ import annotations

from typing import Any

import httpx
import msgspec
from redis.asyncio import Redis

from pulse.events.message import EventV1
from pulse.live.keys import visit_key
from pulse.rollup.sessions import SAVE_CHUNK, SESSION_GAP_MS, Sessions
from pulse.warehouse.client import Warehouse
from stack import Stack
from visitor import USER_AGENT

MINUTE_MS = 60_000


def _event(visitor: int, ts_ms: int, site: str = "site-s") -> EventV1:
    return EventV1(
        event_id=ts_ms.to_bytes(16, "big"),
        tenant_id="tenant-s",
        site_id=site,
        ts_ms=ts_ms,
        name="pageview",
        url="https://s.example/",
        referrer="",
        visitor_id=visitor,
        user_agent=USER_AGENT,
        screen_width=1280,
        props={},
    )


async def test_a_gap_over_30_minutes_opens_a_new_session_and_reassigning_is_stable(stack: Stack) -> None:
    redis = Redis.from_url(stack.settings.redis_url)
    start = 1_800_000_000_000
    batch = [
        _event(1, start),
        _event(2, start + MINUTE_MS),
        _event(1, start + 10 * MINUTE_MS),
        _event(1, start + 10 * MINUTE_MS + SESSION_GAP_MS),
        _event(1, start + 10 * MINUTE_MS + SESSION_GAP_MS + 1),
    ]
    try:
        sessions = Sessions(redis)
        marks = await sessions.assign(batch)
        # The same batch read again after a crash (a new worker, state from Redis) or by this
        # worker (state it remembers writing) gets the same sessions.
        again = await Sessions(redis).assign(batch)
        remembered = await sessions.assign(batch)
        later = await Sessions(redis).assign([_event(1, start + 10 * MINUTE_MS + 2 * SESSION_GAP_MS + 2)])
    finally:
        await redis.aclose()
    first, other, same, boundary, after = marks
    assert first.session_id == same.session_id
    assert first.start_ms == start
    assert other.session_id not in (first.session_id, 0)
    # Exactly 30 minutes after the last event still continues the session; a ms more does not (later).
    assert boundary.session_id == first.session_id
    assert after.session_id == first.session_id
    assert again == marks
    assert remembered == marks
    assert later[0].session_id != first.session_id
    assert later[0].start_ms == start + 10 * MINUTE_MS + 2 * SESSION_GAP_MS + 2


async def test_every_visitor_of_a_batch_larger_than_a_save_chunk_is_saved_with_its_ttl(stack: Stack) -> None:
    redis = Redis.from_url(stack.settings.redis_url)
    start = 1_800_100_000_000
    visitors = range(50_000, 50_000 + SAVE_CHUNK + 500)
    try:
        await Sessions(redis).assign([_event(v, start + v, site="site-chunks") for v in visitors])
        keys = [visit_key("tenant-s", "site-chunks", v) for v in visitors]
        saved = await redis.mget(keys)
        ttls = {await redis.pttl(keys[0]), await redis.pttl(keys[-1])}
    finally:
        await redis.aclose()
    assert all(isinstance(value, bytes) for value in saved)
    assert all(0 < ttl <= SESSION_GAP_MS + 60_000 for ttl in ttls)


async def test_a_session_ends_at_midnight_utc_so_every_session_lies_within_one_day(stack: Stack) -> None:
    redis = Redis.from_url(stack.settings.redis_url)
    midnight = 1_800_057_600_000  # 2027-01-16T00:00:00Z
    try:
        before, after = await Sessions(redis).assign(
            [_event(3, midnight - 5 * MINUTE_MS), _event(3, midnight + 5 * MINUTE_MS)]
        )
    finally:
        await redis.aclose()
    assert before.session_id != after.session_id
    assert after.start_ms == midnight + 5 * MINUTE_MS


async def test_bounce_rate_duration_and_breakdowns_come_out_of_the_api_and_rollups(stack: Stack) -> None:
    tenant = await stack.tenant("Sessions")
    site = tenant.site.id
    visits = {
        "198.51.100.10": ["/", "/pricing", "/signup"],
        "198.51.100.11": ["/"],
        "198.51.100.12": ["/blog/post"],
    }
    async with httpx.AsyncClient(base_url=stack.collector, headers={"user-agent": USER_AGENT}) as client:
        for address, pages in visits.items():
            for page in pages:
                body = msgspec.json.encode(
                    {"s": site, "u": f"https://sessions.example{page}", "r": "https://www.google.com/"}
                )
                response = await client.post("/api/event", content=body, headers={"x-forwarded-for": address})
                assert response.status_code == 202
    figures = await stack.counts(tenant, {"pageviews": 5, "sessions": 3})
    assert figures == {"pageviews": 5, "sessions": 3}

    token = await stack.token(tenant)
    async with httpx.AsyncClient(
        base_url=stack.dashboard, headers={"authorization": f"Bearer {token}"}, timeout=30
    ) as api:
        aggregate = (await api.get(f"/api/v1/sites/{site}/aggregate", params={"period": "24h"})).json()
    assert aggregate["bounce_rate"] == round(2 / 3, 4)
    assert aggregate["visit_duration_s"] >= 0

    warehouse = Warehouse(stack.settings.effective_clickhouse_url, stack.settings.clickhouse_database)

    def breakdowns(table: str, counted: str) -> dict[tuple[str, str], tuple[int, int]]:
        sql = (
            f"SELECT dimension, value, sum({counted}), uniqCombinedMerge(13)(visitors) FROM {table}"  # noqa: S608
            " WHERE tenant_id = {tenant:String} AND site_id = {site:String} GROUP BY dimension, value"
        )
        rows: Any = warehouse.client.query(
            sql, parameters={"tenant": tenant.tenant_id, "site": site}
        ).result_rows
        return {(d, v): (int(p), int(u)) for d, v, p, u in rows}

    # (pageviews, visitors) per event attribute.
    traffic = await warehouse.run(breakdowns, "traffic_day", "pageviews")
    assert traffic[("page", "/")] == (2, 2)
    assert traffic[("page", "/pricing")] == (1, 1)
    assert traffic[("browser", "Chrome")] == (5, 3)
    assert traffic[("device", "desktop")] == (5, 3)
    assert traffic[("event", "pageview")] == (5, 3)
    # (visits, visitors) per visit attribute: where each visit came from.
    visits = await warehouse.run(breakdowns, "visits_day", "visits")
    assert visits[("channel", "search")] == (3, 3)
    assert visits[("source", "Google")] == (3, 3)
    assert visits[("entry_page", "/")] == (2, 2)

    def entry_and_exit() -> list[tuple[str, str, int]]:
        sql = (
            "SELECT argMinMerge(entry_page), argMaxMerge(exit_page), sum(pageviews) FROM sessions"
            " WHERE tenant_id = {tenant:String} AND site_id = {site:String} GROUP BY session_id ORDER BY 3 DESC"
        )
        rows: Any = warehouse.client.query(
            sql, parameters={"tenant": tenant.tenant_id, "site": site}
        ).result_rows
        return [(str(a), str(b), int(c)) for a, b, c in rows]

    sessions = await warehouse.run(entry_and_exit)
    assert sessions[0] == ("/", "/signup", 3)
    assert sorted(sessions[1:]) == [("/", "/", 1), ("/blog/post", "/blog/post", 1)]
