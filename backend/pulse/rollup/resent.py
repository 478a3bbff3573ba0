"""Copies of an event its sender resent: counted once.

A sender that was refused (429, 503) or lost its answer (a collector killed mid-request, a load
balancer retrying) sends the event again with the same id (`x`, pulse.collector.ingest
.sent_event_id). When the first copy did reach Kafka, both copies arrive, always on the same
partition, since the key is the site and the visitor, and within the sender's retry span.

So the worker remembers the ids it stored during the last `window_s` seconds, in time slots
it drops whole, and a new owner of a partition reads that window's ids back from ClickHouse.
Memory is bounded: past `max_ids`, the oldest slot goes early and the window shrinks.
"""

from __future__ import annotations

import collections
import time
from collections.abc import Callable, Iterable, Sequence

from pulse.warehouse.client import Warehouse

_SLOTS = 10

# Relative to the newest stored event, not to now: a worker catching up on a backlog meets the
# copies as far behind as it is.
_STORED_IDS = """
WITH (
    SELECT max(ts) FROM {db:Identifier}.events
    WHERE kafka_epoch = {epoch:String} AND kafka_partition IN {partitions:Array(UInt16)}
) AS newest
SELECT hex(event_id)
FROM {db:Identifier}.events
WHERE kafka_epoch = {epoch:String}
  AND kafka_partition IN {partitions:Array(UInt16)}
  AND ts >= newest - toIntervalSecond({window:UInt32})
"""


class ResentCopies:
    def __init__(self, window_s: float, max_ids: int, clock: Callable[[], float] = time.monotonic) -> None:
        self._slot_s = window_s / _SLOTS
        self._max_ids = max_ids
        self._clock = clock
        self._slots: collections.deque[tuple[float, set[bytes]]] = collections.deque()
        self._size = 0

    def __len__(self) -> int:
        return self._size

    def seen(self, event_id: bytes) -> bool:
        return bool(self.stored_among({event_id}))

    def stored_among(self, event_ids: set[bytes]) -> set[bytes]:
        """Which of these ids were stored: one set intersection per slot, not a lookup per event."""
        stored: set[bytes] = set()
        for _, ids in self._slots:
            stored |= event_ids & ids
        return stored

    def remember(self, event_ids: Iterable[bytes]) -> None:
        now = self._clock()
        while self._slots and now - self._slots[0][0] >= self._slot_s * _SLOTS:
            self._drop_oldest()
        if not self._slots or now - self._slots[-1][0] >= self._slot_s:
            self._slots.append((now, set()))
        newest = self._slots[-1][1]
        before = len(newest)
        newest.update(event_ids)
        self._size += len(newest) - before
        while self._size > self._max_ids and len(self._slots) > 1:
            self._drop_oldest()

    def _drop_oldest(self) -> None:
        _, ids = self._slots.popleft()
        self._size -= len(ids)


async def stored_recently(
    warehouse: Warehouse, epoch: str, partitions: list[int], window_s: float, databases: Sequence[str] = ()
) -> list[bytes]:
    """The ids ClickHouse stored for these partitions within the window before their newest, in the
    warehouse's database and in `databases` (tenants' own: a tenant's copies go where it does)."""
    if not partitions:
        return []
    ids: list[bytes] = []
    for database in (warehouse.database, *databases):
        parameters = {"epoch": epoch, "partitions": partitions, "window": int(window_s) + 1, "db": database}
        result = await warehouse.run(warehouse.client.query, _STORED_IDS, parameters=parameters)
        ids.extend(bytes.fromhex(row[0]) for row in result.result_rows)
    return ids
