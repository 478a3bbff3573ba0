"""Worker side of the live layer: per-second counters, active visitors, one tick per site.

Redis is a cache: everything here expires, and a lost write only dims the live view;
ClickHouse keeps the counts.
"""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Sequence
from urllib.parse import urlsplit

import msgspec
from redis.asyncio import Redis
from redis.asyncio.client import Pipeline

from pulse.enrichment.event import COLUMNS as ENRICHMENT_COLUMNS
from pulse.enrichment.event import enrich
from pulse.events.message import AnyEvent
from pulse.live.keys import (
    ACTIVE_WINDOW_S,
    SECONDS_TTL_S,
    active_key,
    recent_key,
    seconds_key,
    tick_channel,
)
from pulse.live.tick import CHART_WINDOW_S, MAX_PATH, RECENT_KEPT, RECENT_PER_TICK, LiveEvent, Tick

_encode = msgspec.json.Encoder().encode

# Reading-time pings keep a visitor active but are not events a site owner counts.
ENGAGEMENT = "engagement"


class LiveWriter:
    def __init__(self, redis: Redis) -> None:
        self._redis = redis

    async def apply(self, events: Sequence[AnyEvent]) -> None:
        per_site: dict[tuple[str, str], list[AnyEvent]] = defaultdict(list)
        for event in events:
            per_site[(event.tenant_id, event.site_id)].append(event)
        now_ms = int(time.time() * 1000)
        pipe = self._redis.pipeline(transaction=False)
        pending: list[tuple[str, Tick, int]] = []
        for (tenant_id, site_id), site_events in per_site.items():
            seconds = self._count_seconds(pipe, tenant_id, site_id, site_events)
            key = active_key(tenant_id, site_id)
            pipe.zadd(key, {str(e.visitor_id): e.ts_ms for e in site_events})
            pipe.zremrangebyscore(key, 0, now_ms - ACTIVE_WINDOW_S * 1000)
            pipe.expire(key, ACTIVE_WINDOW_S * 2)
            visitors_at = len(pipe)
            pipe.zcard(key)
            recent = _recent(site_events)
            if recent:
                listed = recent_key(tenant_id, site_id)
                # Oldest first, so the newest ends up at the head of the list.
                pipe.lpush(listed, *(_encode(e) for e in reversed(recent)))
                pipe.ltrim(listed, 0, RECENT_KEPT - 1)
                pipe.expire(listed, SECONDS_TTL_S)
            chart_start = now_ms // 1000 - CHART_WINDOW_S
            tick = Tick(
                site_id=site_id,
                ts_ms=now_ms,
                pageviews=sum(1 for e in site_events if e.name == "pageview"),
                events=sum(1 for e in site_events if e.name != ENGAGEMENT),
                newest_ms=max(e.ts_ms for e in site_events),
                seconds=sorted((s, n) for s, n in seconds.items() if s > chart_start),
                recent=recent,
            )
            pending.append((tick_channel(tenant_id, site_id), tick, visitors_at))
        counted = await pipe.execute()
        # Published after the counters are written, so a page that reads on a tick sees them;
        # the visitor count is the one this batch left, read in the same round trip.
        publish = self._redis.pipeline(transaction=False)
        for channel, tick, visitors_at in pending:
            counted_tick = msgspec.structs.replace(tick, visitors=int(counted[visitors_at]))
            publish.publish(channel, _encode(counted_tick))
        await publish.execute()

    @staticmethod
    def _count_seconds(
        pipe: Pipeline, tenant_id: str, site_id: str, events: Sequence[AnyEvent]
    ) -> dict[int, int]:
        """Adds the events to the per-second counters; returns (epoch second → events) of the batch."""
        counts: dict[int, int] = defaultdict(int)
        for e in events:
            if e.name != ENGAGEMENT:
                counts[e.ts_ms // 1000] += 1
        minutes = set()
        for second, n in counts.items():
            minute = second // 60
            pipe.hincrby(seconds_key(tenant_id, site_id, minute), str(second % 60), n)
            minutes.add(minute)
        for minute in minutes:
            pipe.expire(seconds_key(tenant_id, site_id, minute), SECONDS_TTL_S)
        return counts

    async def restore(
        self,
        seconds: Sequence[tuple[str, str, int, int]],
        active: Sequence[tuple[str, str, int, int]],
    ) -> None:
        """Overwrite the live window with what ClickHouse holds, after a worker (re)starts.

        `seconds` is (tenant, site, epoch second, events), `active` is (tenant, site, visitor,
        last seen ms). Values are set, not added, so restoring twice changes nothing.
        """
        pipe = self._redis.pipeline(transaction=False)
        for tenant_id, site_id, second, count in seconds:
            key = seconds_key(tenant_id, site_id, second // 60)
            pipe.hset(key, str(second % 60), count)
            pipe.expire(key, SECONDS_TTL_S)
        for tenant_id, site_id, visitor, seen_ms in active:
            key = active_key(tenant_id, site_id)
            pipe.zadd(key, {str(visitor): seen_ms})
            pipe.expire(key, ACTIVE_WINDOW_S * 2)
        await pipe.execute()


def _recent(events: Sequence[AnyEvent]) -> list[LiveEvent]:
    """The newest listed events of a batch, newest first, enriched as the worker stores them."""
    shown = [e for e in events if e.name != ENGAGEMENT]
    shown.sort(key=lambda e: e.ts_ms, reverse=True)
    return [_listed(e) for e in shown[:RECENT_PER_TICK]]


def _listed(event: AnyEvent) -> LiveEvent:
    page = urlsplit(event.url)
    # The same enrichment as the event's row (pulse.rollup.rows): cached by User-Agent and referrer.
    derived = dict(zip(ENRICHMENT_COLUMNS, enrich(event, page.hostname or "", page.query), strict=True))
    return LiveEvent(
        ts_ms=event.ts_ms,
        name=event.name,
        path=(page.path or "/")[:MAX_PATH],
        source=derived["source"],
        country=event.country,
        device=derived["device"],
        browser=derived["browser"],
    )
