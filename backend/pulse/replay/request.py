"""`pulse replay`: check what is asked, record the job, follow it until a worker has done it."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

from pulse.oltp.accounts import Accounts
from pulse.oltp.replay_jobs import FINISHED, ReplayJob, ReplayJobs
from pulse.replay.archive import ArchiveMissing, check_archive


class ReplayRefused(ValueError):
    """The replay asked for cannot be done; the message says why."""


def today_utc() -> date:
    return datetime.now(UTC).date()


async def request_replay(
    accounts: Accounts,
    jobs: ReplayJobs,
    *,
    tenant_id: str | None,
    site_id: str | None,
    first_day: date,
    last_day: date,
    archive: Path | None = None,
    today: Callable[[], date] = today_utc,
) -> ReplayJob:
    tenant_id, site_ids = await _scope(accounts, tenant_id, site_id)
    tenant = await accounts.get_tenant(tenant_id)
    if tenant is None:
        raise ReplayRefused(f"no tenant with id {tenant_id!r}")
    if tenant.clickhouse_database:
        raise ReplayRefused(
            f"tenant {tenant_id} is on a ClickHouse database of its own ({tenant.clickhouse_database}): "
            "a replay rebuilds days in the shared database only"
        )
    if first_day > last_day:
        raise ReplayRefused(f"--from {first_day} is after --to {last_day}")
    now = today()
    if last_day >= now:
        raise ReplayRefused(
            f"--to {last_day} is not over yet: a replay rebuilds whole past days (UTC), up to {now - timedelta(days=1)}"
        )
    if archive is not None:
        try:
            root = check_archive(archive, first_day, last_day)
        except ArchiveMissing as exc:
            raise ReplayRefused(str(exc)) from None
        # Days past the raw retention are what an archive is for.
        return await jobs.create(tenant_id, site_ids, first_day, last_day, archive=str(root))
    # TTL removes a day's rows as parts merge, so the oldest kept day may already be partly gone.
    oldest = now - timedelta(days=tenant.retention_days - 1)
    if first_day < oldest:
        raise ReplayRefused(
            f"--from {first_day} is past the tenant's raw event retention ({tenant.retention_days} days): "
            f"the oldest day a replay can rebuild is {oldest}; an archive can rebuild it (--from-archive)"
        )
    return await jobs.create(tenant_id, site_ids, first_day, last_day)


async def _scope(
    accounts: Accounts, tenant_id: str | None, site_id: str | None
) -> tuple[str, tuple[str, ...]]:
    if site_id is not None:
        site = await accounts.find_site(site_id)
        if site is None or (tenant_id is not None and site.tenant_id != tenant_id):
            raise ReplayRefused(
                f"no site with key {site_id!r}" + (f" in tenant {tenant_id}" if tenant_id else "")
            )
        return site.tenant_id, (site.id,)
    if tenant_id is None:
        raise ReplayRefused("name a --site or a --tenant to replay")
    sites = await accounts.list_sites(tenant_id)
    if not sites:
        raise ReplayRefused(f"tenant {tenant_id!r} does not exist or has no sites")
    return tenant_id, tuple(site.id for site in sites)


async def follow(jobs: ReplayJobs, job_id: str, interval_s: float = 0.5) -> AsyncIterator[ReplayJob]:
    """The job each time it is read, until it is done or failed."""
    while True:
        job = await jobs.get(job_id)
        if job is None:
            raise ReplayRefused(f"replay {job_id} vanished from the database")
        yield job
        if job.state in FINISHED:
            return
        await asyncio.sleep(interval_s)
