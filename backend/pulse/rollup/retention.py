"""Each tenant's raw-event retention, read from the OLTP store at most once a minute.

A tenant whose plan changed keeps its old retention on rows written in the meantime; the
TTL applies per row, so those rows simply expire on the old schedule.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping

from sqlalchemy.exc import SQLAlchemyError

from pulse.oltp.accounts import DEFAULT_RETENTION_DAYS

log = logging.getLogger(__name__)

UNSEEN_REFRESH_S = 5.0


class TenantRetention:
    def __init__(
        self,
        source: Callable[[], Awaitable[dict[str, int]]],
        refresh_s: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._source = source
        self._refresh_s = refresh_s
        self._clock = clock
        self._days: dict[str, int] = {}
        self._fresh_until = float("-inf")
        # Tenants a read did not find, and when: looked up again only UNSEEN_REFRESH_S later.
        self._missed: dict[str, float] = {}

    async def current(self, tenant_ids: Iterable[str] = ()) -> Mapping[str, int]:
        """Refreshed once a minute, and at once for a tenant not seen yet: its first rows must not
        get the default (kept longer than its plan allows) because another new tenant was just
        looked up. A tenant no read finds (deleted) is looked up at most every few seconds."""
        now = self._clock()
        asked = list(tenant_ids)
        unseen = [
            t
            for t in asked
            if t not in self._days and now >= self._missed.get(t, -UNSEEN_REFRESH_S) + UNSEEN_REFRESH_S
        ]
        if now >= self._fresh_until or unseen:
            try:
                self._days = await self._source()
            except (SQLAlchemyError, OSError) as exc:
                # Rows still get a retention: the last known, or the default.
                log.warning("tenant retention not refreshed (%s); using what was known", exc)
            self._fresh_until = self._clock() + self._refresh_s
            self._missed = {t: at for t, at in self._missed.items() if at + UNSEEN_REFRESH_S > now}
            self._missed |= {t: now for t in asked if t not in self._days}
        return self._days

    @staticmethod
    def of(days: Mapping[str, int], tenant_id: str) -> int:
        return days.get(tenant_id, DEFAULT_RETENTION_DAYS)
