"""A rollup worker's side of replays: claim a job, emit it, wait for it to be staged, swap it in.

Every step can be run again by whichever worker takes the job over when its owner's heartbeat
stops: emitting again stages duplicates that the staging table folds; swapping again deletes
and inserts the same rows. The staging table is dropped only after the job is marked done.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import Callable

from pulse.oltp.replay_jobs import FINISHED, LostClaim, ReplayJob, ReplayJobs
from pulse.replay.archive import load_archive
from pulse.replay.emit import count_events, emit
from pulse.replay.staging import create_staging, drop_staging, staged_events, staged_job_ids
from pulse.replay.swap import UnknownProjection, swap
from pulse.rollup.offsets import all_consumed
from pulse.settings import Settings
from pulse.warehouse.client import Warehouse

log = logging.getLogger(__name__)

HEARTBEAT_S = 2.0


class ReplayCoordinator:
    def __init__(
        self,
        settings: Settings,
        warehouse: Warehouse,
        jobs: ReplayJobs,
        caught_up: Callable[[], bool],
    ) -> None:
        self._settings = settings
        self._warehouse = warehouse
        self._jobs = jobs
        self._caught_up = caught_up
        self._owner = uuid.uuid4().hex
        self._job: ReplayJob | None = None

    async def run(self, stop: asyncio.Event) -> None:
        await self._drop_finished_staging()
        while not stop.is_set():
            try:
                job = await self._jobs.claim(self._owner, int(self._settings.replay_stale_s * 1000))
                if job is not None:
                    await self._own(job, stop)
                    continue
            except Exception:
                log.exception("replay step failed; the job is retried once its heartbeat goes stale")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), self._settings.replay_poll_s)

    async def _own(self, job: ReplayJob, stop: asyncio.Event) -> None:
        """Carry the job out while beating its heartbeat; stop if another worker took it over."""
        self._job = job
        log.info("replay %s: %s from %s to %s", job.id, job.state, job.first_day, job.last_day)
        work = asyncio.create_task(self._carry_out(stop))
        stopping = asyncio.create_task(stop.wait())
        try:
            while not work.done():
                await asyncio.wait({work, stopping}, timeout=HEARTBEAT_S, return_when=asyncio.FIRST_COMPLETED)
                if stop.is_set():
                    # Shutting down: the job is taken over (by this worker's next run, or another)
                    # once its heartbeat goes stale, and its step repeated.
                    return
                if not work.done() and self._job is not None:
                    # Only the heartbeat: the work's own updates keep self._job current.
                    await self._jobs.advance(self._job)
            await work
        except LostClaim:
            log.warning("replay %s was taken over by another worker", job.id)
        except UnknownProjection as exc:
            await self._advance(state="failed", error=str(exc))
        finally:
            stopping.cancel()
            work.cancel()
            with contextlib.suppress(asyncio.CancelledError, LostClaim):
                await work
            self._job = None

    async def _advance(self, **changes: object) -> ReplayJob:
        assert self._job is not None
        self._job = await self._jobs.advance(self._job, **changes)
        return self._job

    async def _carry_out(self, stop: asyncio.Event) -> None:
        assert self._job is not None
        job = self._job
        if job.state == "emitting":
            await create_staging(self._warehouse, job.id)
            # Events of these days still on their way to ClickHouse would be missed by the replay
            # and then deleted by its swap: wait until this worker has no lag and ClickHouse holds
            # every partition up to its end (the other workers' partitions too).
            while not (self._caught_up() and await all_consumed(self._settings, self._warehouse)):  # noqa: ASYNC110
                await asyncio.sleep(0.5)
            total = await (load_archive if job.archive else count_events)(self._warehouse, job)
            job = await self._advance(total=total, emitted=0)
            emitted = await emit(self._settings, self._warehouse, job, self._emitted)
            # What the workers will stage: an archive's bots are not emitted.
            job = await self._advance(state="rebuilding", total=emitted)
        if job.state == "rebuilding":
            while (staged := await staged_events(self._warehouse, job.id)) < job.total:
                await self._advance(staged=staged)
                await asyncio.sleep(0.5)
            job = await self._advance(staged=staged, state="swapping")
        if job.state == "swapping":
            await swap(self._warehouse, job)
            await self._advance(state="done")
            await drop_staging(self._warehouse, job.id)
            log.info("replay %s done: %d events rebuilt", job.id, job.total)

    async def _emitted(self, count: int) -> None:
        await self._advance(emitted=count)

    async def _drop_finished_staging(self) -> None:
        """Staging tables left by a worker that died between marking its job done and dropping them."""
        try:
            staged = await staged_job_ids(self._warehouse)
            states = await self._jobs.states(staged)
            for job_id in staged:
                if states.get(job_id, "done") in FINISHED:
                    await drop_staging(self._warehouse, job_id)
        except Exception:
            log.exception("leftover replay staging tables not dropped")
