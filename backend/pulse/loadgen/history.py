"""A site's history of events, generated inside ClickHouse: millions of rows in one INSERT … SELECT.

The rows are what the rollup worker writes for real traffic, so the materialized views fill every
rollup exactly as they would: sessions of 1 to 8 events (proper session ids and starts, within one
UTC day, gaps under 30 minutes), mostly pageviews, some custom events with properties and
engagement pings; pages drawn Zipf-like from a few thousand paths; each visit's first event carries
its referrer or campaign and the enrichment the worker derives from it (source, channel, UTM tags),
the later ones an internal referrer; visitors return, each with one browser, OS, device and
country. Everything is a hash of the row's number, so the same arguments give the same rows.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from datetime import datetime
from typing import Any

import msgspec

from pulse.enrichment.referrer import traffic_source
from pulse.enrichment.useragent import parse_user_agent
from pulse.loadgen.traffic import AGENTS, PAGES, REFERRERS
from pulse.rollup.rows import COLUMNS

DAY_MS = 86_400_000
# Events per visit: how many visits read one page, two, ... eight.
STEPS = [40, 15, 12, 10, 8, 6, 5, 4]
# Visits drawn over the count that gives the events asked for: LIMIT keeps that many events, and
# the sum of steps varies by about 0.05% at 10 million (the 100 more cover small histories).
SPARE_VISITS = 1.002
# Multiplies a visit's number into its slot of the span: a prime, so every slot is taken once.
STRIDE = 2_654_435_761
# Distinct paths; page k is drawn with a chance about 1/k.
PATHS = 3000
# (query string of the landing URL, weight): most visits carry no campaign.
CAMPAIGNS = [
    ("", 78),
    ("utm_source=newsletter&utm_medium=email&utm_campaign=november", 7),
    ("utm_source=twitter&utm_medium=social&utm_campaign=launch", 5),
    ("utm_source=google&utm_medium=cpc&utm_campaign=brand", 5),
    ("utm_source=partner&utm_medium=referral&utm_campaign=spring-sale", 3),
    ("gclid=abc123", 2),
]
EXTRA_REFERRERS = [
    ("https://www.linkedin.com/", 4),
    ("https://www.facebook.com/", 3),
    ("https://mail.google.com/", 2),
    ("https://blog.partner.example/post", 2),
    ("https://stackoverflow.com/questions/1", 2),
]
COUNTRIES = [("US", 30), ("DE", 12), ("GB", 10), ("FR", 8), ("IN", 8), ("BR", 6), ("CA", 5), ("NL", 5)]
COUNTRIES += [("JP", 4), ("PL", 3), ("ES", 3), ("SE", 2), ("AU", 2), ("", 2)]
MORE_AGENTS = [
    (
        "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36 Edg/131.0.0.0",
        8,
    ),
    (
        "Mozilla/5.0 (iPad; CPU OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.5 Mobile/15E148 Safari/604.1",
        3,
    ),
]
# Of the events after a visit's first: engagement pings, custom events, the rest pageviews.
ENGAGEMENT_SHARE = 0.08
CUSTOM_SHARE = 0.07
CUSTOM = [
    ("signup", "plan", "pro"),
    ("signup", "plan", "free"),
    ("download", "file", "pulse.pdf"),
    ("outbound", "url", "https://github.com/"),
]
# How much busier noon UTC is than midnight: 0 is flat, below 1 keeps every hour visited.
DAILY_SWING = 0.6
# Weighted draws read a table of this many slots.
SLOT_BITS = 10
SLOTS = 1 << SLOT_BITS
# A visitor comes back for this many visits on average; early visitor numbers come back most.
VISITS_PER_VISITOR = 2.5


class History(msgspec.Struct, frozen=True):
    tenant_id: str
    site_id: str
    hostname: str
    events: int
    # Event times fall in [end - days, end - 30 minutes], so every visit has ended by `end`.
    end: datetime
    days: int = 30


def insert_sql(history: History) -> tuple[str, dict[str, Any]]:
    """One INSERT … SELECT into `events` of the database the client uses, with its parameters.

    Visits are numbered in time order, so each block the views roll up covers a short stretch of
    time, as the worker's batches do; weighted draws read a table of slots, not a search per row.
    """
    landings = [
        (referrer, traffic_source(referrer, history.hostname, query), rw * qw)
        for referrer, rw in [*REFERRERS, *EXTRA_REFERRERS]
        for query, qw in CAMPAIGNS
    ]
    agents = [(parse_user_agent(agent), w) for agent, w in [*AGENTS, *MORE_AGENTS]]
    internal = traffic_source(f"https://{history.hostname}/", history.hostname)
    named = [path for path, _ in PAGES]
    paths = named + [f"/docs/{i}" if i % 3 == 0 else f"/blog/post-{i}" for i in range(len(named), PATHS)]
    steps = _slots(STEPS)
    expected = history.events / (sum(steps) / len(steps))
    visits = math.ceil(expected * SPARE_VISITS) + 100
    end_ms = int(history.end.timestamp() * 1000)
    span_ms = history.days * DAY_MS - 30 * 60_000
    params: dict[str, Any] = {
        "tenant": history.tenant_id,
        "site": history.site_id,
        "host": history.hostname,
        "origin": f"https://{history.hostname}",
        "first_ms": end_ms - history.days * DAY_MS,
        "span_ms": span_ms,
        "visits": visits,
        "visitors": max(10, int(visits / VISITS_PER_VISITOR)),
        "paths": paths,
        "steps": steps,
        "landing": _slots([w for _, _, w in landings]),
        "l_referrer": [r for r, _, _ in landings],
        "l_source": [t.source for _, t, _ in landings],
        "l_channel": [t.channel for _, t, _ in landings],
        "l_utm_source": [t.utm_source for _, t, _ in landings],
        "l_utm_medium": [t.utm_medium for _, t, _ in landings],
        "l_utm_campaign": [t.utm_campaign for _, t, _ in landings],
        "agent": _slots([w for _, w in agents]),
        "a_browser": [a.browser for a, _ in agents],
        "a_browser_version": [a.browser_version for a, _ in agents],
        "a_os": [a.os for a, _ in agents],
        "a_os_version": [a.os_version for a, _ in agents],
        "a_device": [a.device for a, _ in agents],
        "country": _slots([w for _, w in COUNTRIES]),
        "c_country": [c for c, _ in COUNTRIES],
        "x_name": [name for name, _, _ in CUSTOM],
        "x_key": [key for _, key, _ in CUSTOM],
        "x_value": [value for _, _, value in CUSTOM],
        "internal_source": internal.source,
        "internal_channel": internal.channel,
    }

    def bits(hash_: str, shift: int, width: int) -> str:
        """`width` bits of a 64-bit hash as a number in [0, 1)."""
        return f"(bitAnd(bitShiftRight({hash_}, {shift}), {(1 << width) - 1}) / {float(1 << width)})"

    def draw(slots: str, hash_: str, shift: int) -> str:
        """A 1-based index drawn by weight from a table of SLOTS slots."""
        return f"{{{slots}:Array(UInt8)}}[bitAnd(bitShiftRight({hash_}, {shift}), {SLOTS - 1}) + 1]"

    def page(hash_: str) -> str:
        """A path drawn Zipf-like: rank r (from 0) with a chance about 1/(r + 1)."""
        rank = f"least(toUInt32(pow({PATHS + 1}, {bits(hash_, 24, 32)})) - 1, {PATHS - 1})"
        return f"{{paths:Array(String)}}[{rank} + 1]"

    columns = ", ".join(COLUMNS)
    sql = f"""
INSERT INTO events ({columns})
SELECT {columns}
FROM (
    SELECT
        {{tenant:String}} AS tenant_id,
        {{site:String}} AS site_id,
        fromUnixTimestamp64Milli(start_ms + step * gap_ms) AS ts,
        MD5(concat(site_id, ':', toString(k), ':', toString(step))) AS event_id,
        multiIf(
            step = 0, 'pageview',
            {bits("h", 0, 16)} < {ENGAGEMENT_SHARE}, 'engagement',
            {bits("h", 0, 16)} < {ENGAGEMENT_SHARE + CUSTOM_SHARE}, {{x_name:Array(String)}}[custom],
            'pageview') AS name,
        {{host:String}} AS hostname,
        -- Engagement pings and custom events are sent from the page read before them.
        if(name = 'pageview', {page("h")}, previous_page) AS pathname,
        if(step = 0, {{l_referrer:Array(String)}}[landing], concat({{origin:String}}, previous_page)) AS referrer,
        visitor_id,
        if(device = 'mobile', 390, if(device = 'tablet', 820, 1920)) AS screen_width,
        if(name NOT IN ('pageview', 'engagement'),
           map({{x_key:Array(String)}}[custom], {{x_value:Array(String)}}[custom]),
           map()) AS props,
        toUInt16(k % 16) AS kafka_partition,
        k * 8 + step AS kafka_offset,
        if(name = 'engagement', toUInt32(5000 + 55000 * {bits("h", 56, 8)}), 0) AS engagement_ms,
        {{c_country:Array(String)}}[country_slot] AS country,
        'history' AS kafka_epoch,
        cityHash64(site_id, visitor_id, start_ms) AS session_id,
        fromUnixTimestamp64Milli(start_ms) AS session_start,
        toUInt16(400) AS retention_days,
        {{a_browser:Array(String)}}[agent] AS browser,
        {{a_browser_version:Array(String)}}[agent] AS browser_version,
        {{a_os:Array(String)}}[agent] AS os,
        {{a_os_version:Array(String)}}[agent] AS os_version,
        {{a_device:Array(String)}}[agent] AS device,
        if(step = 0, {{l_source:Array(String)}}[landing], {{internal_source:String}}) AS source,
        if(step = 0, {{l_channel:Array(String)}}[landing], {{internal_channel:String}}) AS channel,
        if(step = 0, {{l_utm_source:Array(String)}}[landing], '') AS utm_source,
        if(step = 0, {{l_utm_medium:Array(String)}}[landing], '') AS utm_medium,
        if(step = 0, {{l_utm_campaign:Array(String)}}[landing], '') AS utm_campaign,
        '' AS utm_content,
        '' AS utm_term
    FROM (
        SELECT
            *,
            step,
            cityHash64(k, step) AS h,
            {page("cityHash64(k, step - 1)")} AS previous_page,
            toUInt8(bitAnd(bitShiftRight(h, 16), 0xFF) % {len(CUSTOM)} + 1) AS custom
        FROM (
            SELECT
                number AS k,
                cityHash64(k, {{site:String}}) AS hk,
                cityHash64(k, {{site:String}}, 2) AS hk2,
                toUInt64(floor({{visitors:UInt64}} * pow({bits("hk", 0, 32)}, 1.8))) AS visitor,
                cityHash64({{site:String}}, 'visitor', visitor) AS visitor_id,
                {draw("agent", "visitor_id", 0)} AS agent,
                {draw("country", "visitor_id", 16)} AS country_slot,
                {draw("landing", "hk", 48)} AS landing,
                {draw("steps", "hk2", 0)} AS steps,
                toInt64(20000 + 200000 * {bits("hk2", 16, 32)}) AS gap_ms,
                -- Visit k at an even slot of the span, the slots' order shuffled (STRIDE is prime): the
                -- visits past those LIMIT keeps are then spread over the span, not cut from its end.
                -- 30 s either way.
                {{first_ms:Int64}} + intDiv(toInt64({{span_ms:Int64}}) * ((k * {STRIDE}) % {{visits:UInt64}}), {{visits:UInt64}})
                    + toInt64(60000 * {bits("hk", 32, 16)}) - 30000 AS uniform_ms,
                -- Busier by day than by night: the time of day bent towards noon UTC, within its day,
                -- and mirrored back into the span at either end (held there, visits would pile up).
                uniform_ms + toInt64({DAY_MS * DAILY_SWING} * sin(2 * pi() * (uniform_ms % {DAY_MS}) / {DAY_MS}) / (2 * pi()))
                    AS bent_ms,
                {{first_ms:Int64}} + {{span_ms:Int64}} AS last_ms,
                multiIf(bent_ms > last_ms, 2 * last_ms - bent_ms, bent_ms < {{first_ms:Int64}}, 2 * {{first_ms:Int64}} - bent_ms, bent_ms)
                    AS drawn_ms,
                -- Sessions end at midnight UTC (pulse.rollup.sessions): one that would not starts earlier.
                if(drawn_ms % {DAY_MS} + (steps - 1) * gap_ms >= {DAY_MS}, drawn_ms - (steps - 1) * gap_ms - 1000, drawn_ms)
                    AS start_ms
            FROM numbers({{visits:UInt64}})
        )
        ARRAY JOIN range(steps) AS step
    )
    LIMIT {history.events}
)"""  # noqa: S608 - figures from this module, values bound
    return sql, params


def _slots(weights: Sequence[float]) -> list[int]:
    """SLOTS 1-based indexes into `weights`, each repeated in proportion to its weight."""
    total = sum(weights)
    slots: list[int] = []
    running = 0.0
    for index, weight in enumerate(weights, start=1):
        running += weight
        slots.extend([index] * (round(running / total * SLOTS) - len(slots)))
    return slots
