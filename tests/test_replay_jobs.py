"""Replay jobs in the OLTP store: what `pulse replay` refuses, and how workers share the jobs."""

from __future__ import annotations

from datetime import date, timedelta

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from pulse.oltp.accounts import Accounts
from pulse.oltp.replay_jobs import LostClaim, OverlappingReplay, ReplayJobs
from pulse.replay.request import ReplayRefused, request_replay

TODAY = date(2026, 11, 21)


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


async def _ask(accounts: Accounts, jobs: ReplayJobs, **scope: object) -> object:
    arguments: dict[str, object] = {
        "tenant_id": None,
        "site_id": None,
        "first_day": TODAY - timedelta(days=7),
        "last_day": TODAY - timedelta(days=1),
        **scope,
    }
    return await request_replay(accounts, jobs, today=lambda: TODAY, **arguments)  # type: ignore[arg-type]


async def test_a_replay_is_refused_with_the_reason(accounts: Accounts, oltp_engine: AsyncEngine) -> None:
    jobs = ReplayJobs(oltp_engine)
    tenant = await accounts.create_tenant("Asker")
    site = await accounts.create_site(tenant.id, "Shop", "shop.example")
    other = await accounts.create_tenant("Other")
    await accounts.set_retention(tenant.id, 30)
    refusals = {
        "name a --site or a --tenant": {},
        "no site with key 'nosuchsite12'": {"site_id": "nosuchsite12"},
        f"no site with key {site.id!r} in tenant {other.id}": {"site_id": site.id, "tenant_id": other.id},
        "does not exist or has no sites": {"tenant_id": "0" * 32},
        "is after --to": {
            "tenant_id": tenant.id,
            "first_day": TODAY - timedelta(days=1),
            "last_day": TODAY - timedelta(days=2),
        },
        "is not over yet": {"site_id": site.id, "last_day": TODAY},
        f"the oldest day a replay can rebuild is {TODAY - timedelta(days=29)}": {
            "site_id": site.id,
            "first_day": TODAY - timedelta(days=30),
        },
    }
    for reason, scope in refusals.items():
        with pytest.raises(ReplayRefused, match=reason):
            await _ask(accounts, jobs, **scope)

    job = await _ask(
        accounts,
        jobs,
        site_id=site.id,
        first_day=TODAY - timedelta(days=29),
        last_day=TODAY - timedelta(days=3),
    )
    with pytest.raises(OverlappingReplay, match="still requested"):
        await _ask(accounts, jobs, tenant_id=tenant.id, first_day=TODAY - timedelta(days=4))
    # Other days of the same site are fine.
    await _ask(accounts, jobs, site_id=site.id, first_day=TODAY - timedelta(days=2))
    assert job is not None


async def test_one_worker_claims_a_job_and_another_takes_it_over_when_its_heartbeat_stops(
    accounts: Accounts, oltp_engine: AsyncEngine
) -> None:
    clock = Clock()
    jobs = ReplayJobs(oltp_engine, clock=clock)
    tenant = await accounts.create_tenant("Claimed")
    await accounts.create_site(tenant.id, "Shop", "shop.example")
    job = await request_replay(
        accounts,
        jobs,
        tenant_id=tenant.id,
        site_id=None,
        first_day=TODAY - timedelta(days=3),
        last_day=TODAY - timedelta(days=1),
        today=lambda: TODAY,
    )

    first = await jobs.claim("worker-a", stale_after_ms=30_000)
    assert first is not None
    assert (first.id, first.state) == (job.id, "emitting")
    assert await jobs.claim("worker-b", stale_after_ms=30_000) is None
    first = await jobs.advance(first, total=10, emitted=4)

    clock.now += 31
    taken = await jobs.claim("worker-b", stale_after_ms=30_000)
    assert taken is not None
    assert (taken.owner, taken.state, taken.total, taken.emitted) == ("worker-b", "emitting", 10, 4)
    with pytest.raises(LostClaim):
        await jobs.advance(first, emitted=5)
    done = await jobs.advance(taken, state="done")
    assert await jobs.get(job.id) == done
    assert await jobs.claim("worker-a", stale_after_ms=0) is None
