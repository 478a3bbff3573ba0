"""The ingest path as named steps: decode → screen → resolve site → limit → stamp → publish.

Each refusal carries a reason that is counted in `events_dropped{reason}` and returned
to the client; a batch is accepted or refused whole, so a client never has to guess
which half of it was kept. Bots are the exception that proves the rule: they get a 202
and nothing is stored, because telling a bot it was recognised only teaches it to hide.
"""

from __future__ import annotations

import hashlib
import itertools
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import urlsplit

import msgspec
from sqlalchemy.ext.asyncio import AsyncEngine

from pulse.collector.geo import CountryLookup, country_lookup
from pulse.collector.limits import RateLimiter, retry_after_s
from pulse.collector.privacy import DailySalt, first_party_visitor_id, visitor_id
from pulse.collector.sites import SiteDirectory, SiteRecord
from pulse.enrichment.bots import is_bot
from pulse.events.beacon import Beacon, BeaconError, decode_batch, decode_single
from pulse.events.message import EventV1
from pulse.kafka.publisher import BrokerUnavailable, EventPublisher
from pulse.oltp.salts import SaltStore
from pulse.settings import Settings
from pulse.telemetry.metrics import Metrics
from pulse.telemetry.tracing import Tracing


class Rejection(Exception):
    def __init__(self, status: int, reason: str, field: str, retry_after_s: int | None = None) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason
        self.field = field
        self.retry_after_s = retry_after_s


class RequestContext(msgspec.Struct, frozen=True):
    ip: str
    user_agent: str


@dataclass(frozen=True, slots=True)
class Edge:
    """What the collector knows that the rest of the pipeline must not: where beacons come from."""

    salt: DailySalt
    countries: CountryLookup
    per_ip: RateLimiter
    per_site: RateLimiter


def edge_for(settings: Settings, engine: AsyncEngine, *, rate_limited: bool = True) -> Edge:
    """The edge every admitting process builds: salts from the OLTP store, countries, limits."""
    return Edge(
        salt=DailySalt(SaltStore(engine)),
        countries=country_lookup(settings.geoip_database),
        per_ip=RateLimiter(settings.rate_limit_ip_per_s if rate_limited else 0, settings.rate_limit_ip_burst),
        per_site=RateLimiter(
            settings.rate_limit_site_per_s if rate_limited else 0, settings.rate_limit_site_burst
        ),
    )


class Admission:
    """Every step but publishing: what the collector and the Redpanda Connect plugin share.

    `admit` returns the events to publish, [] for bots, or raises Rejection with the reason.

    A browser's own visitor id (`i`) counts only for a site in cookie mode: a cookieless site
    promised its visitors no lasting identifier, so a snippet edited by hand cannot give them one.
    `senders_name_visitors` is for server-side senders, whose `visitor` is their own account of
    who the visitor is (often all they have: no IP), whatever the site's mode.
    """

    def __init__(
        self,
        settings: Settings,
        sites: SiteDirectory,
        edge: Edge,
        metrics: Metrics,
        *,
        senders_name_visitors: bool = False,
    ) -> None:
        self._settings = settings
        self._senders_name_visitors = senders_name_visitors
        self._sites = sites
        self._edge = edge
        self._metrics = metrics
        self._event_ids = EventIds()

    def decode(self, decode: Callable[[], list[Beacon]]) -> list[Beacon]:
        try:
            return decode()
        except BeaconError as exc:
            self.drop("invalid", 1)
            raise Rejection(400, exc.reason, exc.field) from exc

    async def admit(
        self, beacons: list[Beacon], ctx: RequestContext, ts_ms: int | None = None
    ) -> list[EventV1]:
        """`ts_ms` is the events' time: None (now) for beacons, the source's own for a log line."""
        if self._settings.bot_filter and is_bot(ctx.user_agent):
            self.drop("bot", len(beacons))
            return []
        self._limit(self._edge.per_ip, ctx.ip, len(beacons), "rate_limited_ip", "this address")
        sites = await self._resolve_all(beacons)
        self._check_hosts(beacons, sites)
        for site_id in sites:
            cost = sum(1 for b in beacons if b.s == site_id)
            self._limit(self._edge.per_site, site_id, cost, "rate_limited_site", f"site {site_id!r}")
        salt = await self._edge.salt.current()
        country = self._edge.countries.country(ctx.ip)
        if ts_ms is None:
            ts_ms = int(time.time() * 1000)
        # One request is one browser: the IP and User-Agent part of the id is the same per site.
        visitors = {s: visitor_id(salt, s, ctx.ip, ctx.user_agent) for s in sites}
        return [self._stamp(b, sites[b.s], ctx, visitors[b.s], country, ts_ms) for b in beacons]

    def _limit(self, limiter: RateLimiter, key: str, cost: int, reason: str, who: str) -> None:
        wait = limiter.take(key, cost)
        if wait > 0:
            self.drop(reason, cost)
            raise Rejection(429, f"too many events from {who}; slow down", "", retry_after_s(wait))

    async def _resolve_all(self, beacons: list[Beacon]) -> dict[str, SiteRecord]:
        resolved: dict[str, SiteRecord] = {}
        for index, beacon in enumerate(beacons):
            if beacon.s in resolved:
                continue
            site = await self._sites.resolve(beacon.s)
            at = _path(beacons, index, "s")
            if site is None:
                self.drop("unknown_site", len(beacons))
                raise Rejection(404, f"unknown site key {beacon.s!r}", at)
            if site.disabled:
                self.drop("site_disabled", len(beacons))
                raise Rejection(403, f"site {beacon.s!r} is disabled", at)
            resolved[beacon.s] = site
        return resolved

    def _check_hosts(self, beacons: list[Beacon], sites: dict[str, SiteRecord]) -> None:
        for index, beacon in enumerate(beacons):
            site = sites[beacon.s]
            if not site.allowed_hosts:
                continue
            host = urlsplit(beacon.u).hostname or ""
            if not site.accepts_host(host):
                self.drop("host_not_allowed", len(beacons))
                raise Rejection(
                    403, f"site {beacon.s!r} does not accept events from {host!r}", _path(beacons, index, "u")
                )

    def _stamp(
        self, beacon: Beacon, site: SiteRecord, ctx: RequestContext, visitor: int, country: str, now_ms: int
    ) -> EventV1:
        if beacon.i is not None and (self._senders_name_visitors or site.visitor_mode == "cookie"):
            visitor = first_party_visitor_id(self._settings.secret_key, site.site_id, beacon.i)
        return EventV1(
            event_id=self._event_ids.next()
            if beacon.x is None
            else sent_event_id(site.site_id, visitor, beacon.x),
            tenant_id=site.tenant_id,
            site_id=site.site_id,
            ts_ms=now_ms,
            name=beacon.n,
            url=beacon.u,
            referrer=beacon.r,
            visitor_id=visitor,
            user_agent=ctx.user_agent[:512],
            screen_width=beacon.w,
            props=beacon.p or {},
            engagement_ms=beacon.e,
            country=country,
        )

    def drop(self, reason: str, count: int) -> None:
        self._metrics.events_dropped.add(count, {"reason": reason})


class Ingest:
    """Admission, then an acknowledged write to Kafka."""

    def __init__(
        self,
        settings: Settings,
        sites: SiteDirectory,
        edge: Edge,
        publisher: EventPublisher,
        metrics: Metrics,
        tracing: Tracing,
    ) -> None:
        self._tracing = tracing
        self._settings = settings
        self._admission = Admission(settings, sites, edge, metrics)
        self._publisher = publisher
        self._metrics = metrics

    async def single(self, body: bytes, ctx: RequestContext) -> int:
        return await self._accept(self._admission.decode(lambda: [decode_single(body)]), ctx)

    async def batch(self, body: bytes, ctx: RequestContext) -> int:
        return await self._accept(
            self._admission.decode(lambda: decode_batch(body, self._settings.max_batch_events)), ctx
        )

    async def _accept(self, beacons: list[Beacon], ctx: RequestContext) -> int:
        return await self.publish(await self._admission.admit(beacons, ctx))

    async def publish(self, events: list[EventV1]) -> int:
        """Admitted events written to Kafka and acknowledged; returns how many."""
        if not events:
            return 0
        with self._tracing.span("collector.ingest") as span:
            if span is not None:
                span.set_attribute("pulse.events", len(events))
            try:
                await self._publisher.publish(events, self._tracing.headers())
            except BrokerUnavailable as exc:
                self._admission.drop(exc.reason, len(events))
                raise
        self._metrics.events_accepted.add(len(events))
        return len(events)


class EventIds:
    """Unique 16-byte event ids without a system call per event: a random per-process prefix and a counter.

    They only have to be unique (they key deduplication downstream), not unguessable.
    """

    def __init__(self) -> None:
        self._prefix = os.urandom(8)
        self._counter = itertools.count()

    def next(self) -> bytes:
        return self._prefix + next(self._counter).to_bytes(8, "big")


def sent_event_id(site_id: str, visitor: int, sent: float | str) -> bytes:
    """The id of an event its sender named, the same for every copy the sender resends.

    The visitor is part of it, so nobody can make another visitor's events look like copies of
    theirs; the type is, so that 0.5 and "0.5" stay two ids.
    """
    digest = hashlib.blake2b(digest_size=16, person=b"pulse-sent-id")
    digest.update(f"{site_id}\x00{visitor}\x00{type(sent).__name__}\x00{sent!r}".encode())
    return digest.digest()


def _path(beacons: list[Beacon], index: int, field: str) -> str:
    return f"$.{field}" if len(beacons) == 1 else f"$[{index}].{field}"
