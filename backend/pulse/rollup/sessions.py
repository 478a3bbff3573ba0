"""Sessions: a visitor's events with no gap over 30 minutes, assigned by the rollup worker.

A session also ends at midnight UTC, as Universal Analytics' did: every session then lies within
one day, so a replay can rebuild whole days (pulse/replay) without cutting a session in two.

A visitor's events share a Kafka partition (the key is site + visitor), so one worker sees
them in order; the current session of each visitor (id, start, last event) lives in Redis so
that another worker continues it after a rebalance. The state is written before the batch goes
to ClickHouse: a batch read again after a crash finds its own events already in the state and
gets the same session ids, so the sessions table counts it once.
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from collections.abc import Sequence

import msgspec
from redis.asyncio import Redis

from pulse.events.message import AnyEvent
from pulse.live.keys import visit_key

SESSION_GAP_MS = 30 * 60 * 1000
DAY_MS = 86_400_000


class Visit(msgspec.Struct, array_like=True):
    session_id: int
    start_ms: int
    last_ms: int


class SessionMark(msgspec.Struct, frozen=True, array_like=True):
    session_id: int
    start_ms: int


SAVE_CHUNK = 2_000
# KEYS are visit keys, ARGV[1] the TTL in ms, ARGV[i + 1] the state for KEYS[i].
_SAVE = """
for i, key in ipairs(KEYS) do
    redis.call('SET', key, ARGV[i + 1], 'PX', ARGV[1])
end
return #KEYS
"""

_encode = msgspec.msgpack.Encoder().encode
_decode = msgspec.msgpack.Decoder(Visit).decode


def session_id(site_id: str, visitor_id: int, start_ms: int) -> int:
    """Deterministic, so the same first event always opens the same session; never 0 (no session)."""
    digest = hashlib.blake2b(f"{site_id}:{visitor_id}:{start_ms}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") or 1


def continue_or_open(visit: Visit | None, site_id: str, visitor_id: int, ts_ms: int) -> Visit:
    if (
        visit is not None
        and ts_ms - visit.last_ms <= SESSION_GAP_MS
        and ts_ms // DAY_MS == visit.start_ms // DAY_MS
    ):
        visit.last_ms = max(visit.last_ms, ts_ms)
        return visit
    return Visit(session_id=session_id(site_id, visitor_id, ts_ms), start_ms=ts_ms, last_ms=ts_ms)


class Sessions:
    """Visitors' current sessions, in Redis, with the ones this worker wrote remembered.

    While this worker owns a partition nobody else writes its visitors' states, so what it
    wrote last is what Redis holds and need not be read back. `forget` drops that memory
    whenever partitions are assigned: another worker may have moved on meanwhile.
    """

    def __init__(
        self,
        redis: Redis,
        remember: int = 200_000,
        namespace: str = "",
        ttl_ms: int = SESSION_GAP_MS + 60_000,
    ) -> None:
        # A replay sessionizes history in its own namespace, for as long as the replay may take.
        self._redis = redis
        self._remember = remember
        self._namespace = namespace
        self._ttl_ms = ttl_ms
        self._written: OrderedDict[str, Visit] = OrderedDict()
        self._save_script = redis.register_script(_SAVE)

    def namespaced(self, namespace: str, ttl_ms: int) -> Sessions:
        return Sessions(self._redis, self._remember, namespace, ttl_ms)

    def forget(self) -> None:
        self._written.clear()

    async def assign(self, events: Sequence[AnyEvent]) -> list[SessionMark]:
        """Each event's session, in order; the visitors' states are saved before returning."""
        event_keys = [self._namespace + visit_key(e.tenant_id, e.site_id, e.visitor_id) for e in events]
        keys = dict.fromkeys(event_keys)
        known = {key: self._written[key] for key in keys if key in self._written}
        unknown = [key for key in keys if key not in known]
        if unknown:
            stored = await self._redis.mget(unknown)
            known |= {
                key: _decode(raw) for key, raw in zip(unknown, stored, strict=True) if isinstance(raw, bytes)
            }
        visits: dict[str, Visit] = {}
        marks = []
        for event, key in zip(events, event_keys, strict=True):
            visit = continue_or_open(
                visits.get(key) or known.get(key), event.site_id, event.visitor_id, event.ts_ms
            )
            visits[key] = visit
            marks.append(SessionMark(session_id=visit.session_id, start_ms=visit.start_ms))
        await self._save(visits)
        self._remember_written(visits)
        return marks

    async def _save(self, visits: dict[str, Visit]) -> None:
        """One script call per SAVE_CHUNK visitors: a SET command each cost the worker more than the
        rest of sessionizing (bench/rollup), and a chunk keeps Redis busy for only a few ms."""
        pipe = self._redis.pipeline(transaction=False)
        keys = list(visits)
        for start in range(0, len(keys), SAVE_CHUNK):
            chunk = keys[start : start + SAVE_CHUNK]
            await self._save_script(
                keys=chunk, args=[self._ttl_ms, *(_encode(visits[key]) for key in chunk)], client=pipe
            )
        await pipe.execute()

    def _remember_written(self, visits: dict[str, Visit]) -> None:
        for key, visit in visits.items():
            self._written[key] = visit
            self._written.move_to_end(key)
        while len(self._written) > self._remember:
            self._written.popitem(last=False)
