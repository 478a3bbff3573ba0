"""`pulse replay` on a terminal: the job, a progress bar per phase, and a summary line."""

from __future__ import annotations

import argparse
import asyncio
import sys
from datetime import date
from pathlib import Path

from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from pulse.oltp.accounts import Accounts
from pulse.oltp.db import create_engine
from pulse.oltp.replay_jobs import OverlappingReplay, ReplayJob, ReplayJobs
from pulse.replay.request import ReplayRefused, follow, request_replay
from pulse.settings import Settings


def day(text: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a day as YYYY-MM-DD") from None


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--tenant", help="every site of this tenant (its id)")
    parser.add_argument("--site", help="this site (its key)")
    parser.add_argument(
        "--from", dest="first_day", type=day, required=True, metavar="DAY", help="first day, YYYY-MM-DD (UTC)"
    )
    parser.add_argument(
        "--to", dest="last_day", type=day, required=True, metavar="DAY", help="last day, included (UTC)"
    )
    parser.add_argument(
        "--from-archive",
        dest="archive",
        type=Path,
        metavar="DIR",
        help="read the days from this archive of events.raw (collectors/README.md) instead of the raw table",
    )
    parser.add_argument("--no-wait", action="store_true", help="print the replay's id and return")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")


def replay(settings: Settings, args: argparse.Namespace) -> int:
    return asyncio.run(_replay(settings, args))


async def _replay(settings: Settings, args: argparse.Namespace) -> int:
    engine = create_engine(settings.effective_database_url)
    jobs = ReplayJobs(engine)
    try:
        try:
            job = await request_replay(
                Accounts(engine),
                jobs,
                tenant_id=args.tenant,
                site_id=args.site,
                first_day=args.first_day,
                last_day=args.last_day,
                archive=args.archive,
            )
        except (ReplayRefused, OverlappingReplay) as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 1
        print(
            f"replay {job.id}: {len(job.site_ids)} site(s), {job.first_day} to {job.last_day}"
            f"{f' from the archive at {job.archive}' if job.archive else ''}; a rollup worker carries it out"
        )
        if args.no_wait:
            return 0
        final = await _follow(jobs, job, quiet=args.quiet)
    finally:
        await engine.dispose()
    if final.state == "failed":
        print(f"replay {final.id} failed: {final.error}", file=sys.stderr)
        return 1
    print(f"replay {final.id} done: {final.total} events rebuilt and swapped in")
    return 0


async def _follow(jobs: ReplayJobs, asked: ReplayJob, *, quiet: bool) -> ReplayJob:
    with Progress(
        TextColumn("[bold]{task.description:<10}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        disable=quiet,
    ) as progress:
        waiting = progress.add_task("waiting", total=None)
        emitting = progress.add_task("emitting", total=None, visible=False)
        rebuilding = progress.add_task("rebuilding", total=None, visible=False)
        swapping = progress.add_task("swapping", total=1, visible=False)
        job = asked
        async for job in follow(jobs, asked.id):
            progress.update(waiting, visible=job.state == "requested")
            if job.state != "requested":
                counted = job.state != "emitting" or job.total > 0
                progress.update(
                    emitting, visible=True, total=job.total if counted else None, completed=job.emitted
                )
            if job.state in ("rebuilding", "swapping", "done"):
                progress.update(emitting, completed=job.total)
                progress.update(rebuilding, visible=True, total=job.total, completed=job.staged)
            if job.state in ("swapping", "done"):
                progress.update(rebuilding, completed=job.total)
                progress.update(swapping, visible=True, completed=int(job.state == "done"))
    return job
