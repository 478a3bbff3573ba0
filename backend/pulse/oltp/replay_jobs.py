"""Replay jobs in the OLTP store: asked for by `pulse replay`, claimed and advanced by a worker."""

from __future__ import annotations

import time
import uuid
from datetime import date
from typing import Any, Literal, get_args

import msgspec
from sqlalchemy import BigInteger, Column, MetaData, Row, Table, Text, and_, or_, select, update
from sqlalchemy.ext.asyncio import AsyncEngine

State = Literal["requested", "emitting", "rebuilding", "swapping", "done", "failed"]
STATES: tuple[State, ...] = get_args(State)
# A worker is working on these; "requested" waits for one.
IN_PROGRESS: tuple[State, ...] = ("emitting", "rebuilding", "swapping")
FINISHED: tuple[State, ...] = ("done", "failed")


class ReplayJob(msgspec.Struct, frozen=True, kw_only=True):
    id: str
    tenant_id: str
    site_ids: tuple[str, ...]
    first_day: date
    last_day: date
    state: State
    total: int = 0
    emitted: int = 0
    staged: int = 0
    owner: str = ""
    heartbeat_at: int = 0
    error: str = ""
    created_at: int = 0
    # The root folder of an archive of events.raw to read the days from; '' reads the raw table.
    archive: str = ""


class OverlappingReplay(Exception):
    def __init__(self, job: ReplayJob) -> None:
        super().__init__(
            f"replay {job.id} ({job.first_day} to {job.last_day}) is still {job.state} for some of "
            "these sites and days; wait for it to finish"
        )
        self.job = job


_jobs = Table(
    "replay_jobs",
    MetaData(),
    Column("id", Text, primary_key=True),
    Column("tenant_id", Text),
    Column("site_ids", Text),
    Column("first_day", Text),
    Column("last_day", Text),
    Column("state", Text),
    Column("total", BigInteger),
    Column("emitted", BigInteger),
    Column("staged", BigInteger),
    Column("owner", Text),
    Column("heartbeat_at", BigInteger),
    Column("error", Text),
    Column("created_at", BigInteger),
    Column("archive", Text),
)


class ReplayJobs:
    def __init__(self, engine: AsyncEngine, clock: Any = time.time) -> None:
        self._engine = engine
        self._clock = clock

    def _now_ms(self) -> int:
        return int(self._clock() * 1000)

    async def create(
        self, tenant_id: str, site_ids: tuple[str, ...], first_day: date, last_day: date, archive: str = ""
    ) -> ReplayJob:
        """A new requested job, unless an unfinished one covers any of the same sites and days.

        Two replays rebuilding the same day would each swap in a copy of it.
        """
        job = ReplayJob(
            id=uuid.uuid4().hex,
            tenant_id=tenant_id,
            site_ids=site_ids,
            first_day=first_day,
            last_day=last_day,
            state="requested",
            created_at=self._now_ms(),
            archive=archive,
        )
        async with self._engine.begin() as conn:
            unfinished = await conn.execute(
                select(_jobs).where(
                    _jobs.c.tenant_id == tenant_id,
                    _jobs.c.state.not_in(FINISHED),
                    _jobs.c.first_day <= last_day.isoformat(),
                    _jobs.c.last_day >= first_day.isoformat(),
                )
            )
            for row in unfinished:
                other = _job(row)
                if set(other.site_ids) & set(site_ids):
                    raise OverlappingReplay(other)
            await conn.execute(_jobs.insert().values(_values(job)))
        return job

    async def get(self, job_id: str) -> ReplayJob | None:
        async with self._engine.connect() as conn:
            row = (await conn.execute(select(_jobs).where(_jobs.c.id == job_id))).first()
        return None if row is None else _job(row)

    async def claim(self, owner: str, stale_after_ms: int) -> ReplayJob | None:
        """The oldest job nobody is working on (new, or its worker's heartbeat stopped), now `owner`'s."""
        now = self._now_ms()
        async with self._engine.connect() as conn:
            rows = await conn.execute(
                select(_jobs)
                .where(
                    or_(
                        _jobs.c.state == "requested",
                        and_(_jobs.c.state.in_(IN_PROGRESS), _jobs.c.heartbeat_at < now - stale_after_ms),
                    )
                )
                .order_by(_jobs.c.created_at)
                .limit(5)
            )
            candidates = [_job(row) for row in rows]
        for job in candidates:
            state: State = "emitting" if job.state == "requested" else job.state
            async with self._engine.begin() as conn:
                # Compare-and-set on the heartbeat: of two workers claiming at once, one wins.
                taken = await conn.execute(
                    update(_jobs)
                    .where(
                        _jobs.c.id == job.id,
                        _jobs.c.state == job.state,
                        _jobs.c.heartbeat_at == job.heartbeat_at,
                    )
                    .values(owner=owner, heartbeat_at=now, state=state)
                )
            if taken.rowcount == 1:
                return msgspec.structs.replace(job, owner=owner, heartbeat_at=now, state=state)
        return None

    async def advance(self, job: ReplayJob, **changes: Any) -> ReplayJob:
        """Beat the heartbeat and record progress; raises LostClaim if another worker took the job."""
        changed = msgspec.structs.replace(job, heartbeat_at=self._now_ms(), **changes)
        values = {k: v for k, v in _values(changed).items() if k in {"heartbeat_at", *changes}}
        async with self._engine.begin() as conn:
            result = await conn.execute(
                update(_jobs).where(_jobs.c.id == job.id, _jobs.c.owner == job.owner).values(values)
            )
        if result.rowcount != 1:
            raise LostClaim(job.id)
        return changed

    async def states(self, job_ids: list[str]) -> dict[str, State]:
        if not job_ids:
            return {}
        async with self._engine.connect() as conn:
            rows = await conn.execute(select(_jobs.c.id, _jobs.c.state).where(_jobs.c.id.in_(job_ids)))
            return {row.id: row.state for row in rows}


class LostClaim(Exception):
    def __init__(self, job_id: str) -> None:
        super().__init__(f"replay {job_id} was taken over by another worker")


def _values(job: ReplayJob) -> dict[str, Any]:
    values = msgspec.structs.asdict(job)
    values["site_ids"] = ",".join(job.site_ids)
    values["first_day"] = job.first_day.isoformat()
    values["last_day"] = job.last_day.isoformat()
    return values


def _job(row: Row[Any]) -> ReplayJob:
    # Column names are SQLAlchemy quoted_name, a str subclass msgspec does not take as a key.
    values = {str(key): value for key, value in row._mapping.items()}
    values["site_ids"] = tuple(values["site_ids"].split(","))
    values["first_day"] = date.fromisoformat(values["first_day"])
    values["last_day"] = date.fromisoformat(values["last_day"])
    return msgspec.convert(values, ReplayJob)
