"""The ingest path as named steps: decode → resolve site → stamp → publish.

Each refusal carries a reason that is counted in `events_dropped{reason}` and returned
to the client; a batch is accepted or refused whole, so a client never has to guess
which half of it was kept.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable

import msgspec

from pulse.collector.privacy import first_party_visitor_id, visitor_id
from pulse.collector.sites import SiteDirectory, SiteRecord
from pulse.events.beacon import Beacon, BeaconError, decode_batch, decode_single
from pulse.events.message import EventV1
from pulse.kafka.publisher import EventPublisher
from pulse.settings import Settings
from pulse.telemetry.metrics import Metrics
from pulse.telemetry.tracing import Tracing


class Rejection(Exception):
    def __init__(self, status: int, reason: str, field: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason
        self.field = field


class RequestContext(msgspec.Struct, frozen=True):
    ip: str
    user_agent: str


class Ingest:
    def __init__(
        self,
        settings: Settings,
        sites: SiteDirectory,
        publisher: EventPublisher,
        metrics: Metrics,
        tracing: Tracing,
    ) -> None:
        self._tracing = tracing
        self._settings = settings
        self._sites = sites
        self._publisher = publisher
        self._metrics = metrics

    async def single(self, body: bytes, ctx: RequestContext) -> int:
        return await self._accept(self._decode(lambda: [decode_single(body)]), ctx)

    async def batch(self, body: bytes, ctx: RequestContext) -> int:
        return await self._accept(
            self._decode(lambda: decode_batch(body, self._settings.max_batch_events)), ctx
        )

    def _decode(self, decode: Callable[[], list[Beacon]]) -> list[Beacon]:
        try:
            return decode()
        except BeaconError as exc:
            self._drop("invalid", 1)
            raise Rejection(400, exc.reason, exc.field) from exc

    async def _accept(self, beacons: list[Beacon], ctx: RequestContext) -> int:
        sites = await self._resolve_all(beacons)
        now_ms = int(time.time() * 1000)
        events = [self._stamp(b, sites[b.s], ctx, now_ms) for b in beacons]
        with self._tracing.span("collector.ingest") as span:
            if span is not None:
                span.set_attribute("pulse.events", len(events))
            await self._publisher.publish(events, self._tracing.headers())
        self._metrics.events_accepted.add(len(events))
        return len(events)

    async def _resolve_all(self, beacons: list[Beacon]) -> dict[str, SiteRecord]:
        resolved: dict[str, SiteRecord] = {}
        for index, beacon in enumerate(beacons):
            if beacon.s in resolved:
                continue
            site = await self._sites.resolve(beacon.s)
            at = "$.s" if len(beacons) == 1 else f"$[{index}].s"
            if site is None:
                self._drop("unknown_site", len(beacons))
                raise Rejection(404, f"unknown site key {beacon.s!r}", at)
            if site.disabled:
                self._drop("site_disabled", len(beacons))
                raise Rejection(403, f"site {beacon.s!r} is disabled", at)
            resolved[beacon.s] = site
        return resolved

    def _stamp(self, beacon: Beacon, site: SiteRecord, ctx: RequestContext, now_ms: int) -> EventV1:
        return EventV1(
            event_id=os.urandom(16),
            tenant_id=site.tenant_id,
            site_id=site.site_id,
            ts_ms=now_ms,
            name=beacon.n,
            url=beacon.u,
            referrer=beacon.r,
            visitor_id=self._visitor(beacon, site, ctx),
            user_agent=ctx.user_agent[:512],
            screen_width=beacon.w,
            props=beacon.p or {},
            engagement_ms=beacon.e,
        )

    def _visitor(self, beacon: Beacon, site: SiteRecord, ctx: RequestContext) -> int:
        secret = self._settings.secret_key
        if beacon.i is not None:
            return first_party_visitor_id(secret, site.site_id, beacon.i)
        return visitor_id(secret, site.site_id, ctx.ip, ctx.user_agent)

    def _drop(self, reason: str, count: int) -> None:
        self._metrics.events_dropped.add(count, {"reason": reason})
