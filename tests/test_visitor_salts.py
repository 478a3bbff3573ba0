"""Visitor ids use a random salt per UTC day, shared by replicas and destroyed when the day ends."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy.ext.asyncio import AsyncEngine

from pulse.collector.privacy import DailySalt, visitor_id
from pulse.oltp.salts import SaltStore

DAY = 86_400.0
NOON = 20_000 * DAY + DAY / 2


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


async def test_replicas_share_one_salt_per_day(oltp_engine: AsyncEngine) -> None:
    first, second = SaltStore(oltp_engine), SaltStore(oltp_engine)
    salt = await first.salt_for("2026-11-21")
    assert await second.salt_for("2026-11-21") == salt
    assert len(salt) == 32


async def test_a_new_day_brings_a_new_salt_and_destroys_the_old(oltp_engine: AsyncEngine) -> None:
    store = SaltStore(oltp_engine)
    yesterday = await store.salt_for("2026-11-20")
    today = await store.salt_for("2026-11-21")
    assert today != yesterday
    assert await store.days() == ["2026-11-21"]


async def test_visitor_ids_hold_within_a_day_and_change_at_midnight_utc(oltp_engine: AsyncEngine) -> None:
    clock = Clock(NOON)
    salt = DailySalt(SaltStore(oltp_engine), clock)
    morning = visitor_id(await salt.current(), "site", "198.51.100.7", "Firefox")
    clock.now = NOON + DAY / 2 - 1
    assert visitor_id(await salt.current(), "site", "198.51.100.7", "Firefox") == morning
    clock.now = NOON + DAY / 2
    after_midnight = visitor_id(await salt.current(), "site", "198.51.100.7", "Firefox")
    assert after_midnight != morning
    assert await SaltStore(oltp_engine).days() == [_day_name(NOON + DAY)]


async def test_the_same_visitor_on_two_sites_gets_unrelated_ids(oltp_engine: AsyncEngine) -> None:
    salt = await DailySalt(SaltStore(oltp_engine), Clock(NOON)).current()
    assert visitor_id(salt, "site-a", "198.51.100.7", "Firefox") != visitor_id(
        salt, "site-b", "198.51.100.7", "Firefox"
    )


def _day_name(epoch_s: float) -> str:
    return datetime.fromtimestamp(epoch_s, UTC).strftime("%Y-%m-%d")
