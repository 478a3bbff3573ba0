"""A replay's days read from an archive of events.raw (pulse.events.archive) instead of the raw table.

The archive's files of each day, for the job's tenant and sites, are loaded once into a table of
the replay's own, duplicates folded by event id (the archive pipeline delivers at least once);
the emitter then reads it an hour at a time like the raw table. Archived events carry their
User-Agent and campaign tags, so the workers derive browser, OS, source and channel again.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from datetime import date, timedelta
from pathlib import Path
from typing import Any

from pulse.events.archive import STRUCTURE, day_folder, day_glob
from pulse.events.message import EventV1
from pulse.oltp.replay_jobs import ReplayJob
from pulse.replay.staging import source_table
from pulse.warehouse.client import Warehouse

COLUMNS = (
    "event_id, tenant_id, site_id, ts_ms, name, url, referrer, visitor_id, user_agent, screen_width, "
    "props, engagement_ms, country"
)


class ArchiveMissing(ValueError):
    """The archive lacks a day the replay would rebuild: the swap would leave that day empty."""


def days(first: date, last: date) -> Iterator[date]:
    day = first
    while day <= last:
        yield day
        day += timedelta(days=1)


def check_archive(root: Path, first: date, last: date) -> Path:
    """The archive's absolute root, if it holds files for every day asked for."""
    root = root.expanduser().resolve()
    if not root.is_dir():
        raise ArchiveMissing(f"archive {root} is not a folder")
    for day in days(first, last):
        folder = day_folder(root, day)
        if not any(folder.glob("*.jsonl.gz")):
            raise ArchiveMissing(
                f"archive {root} has no files for {day} (expected {folder}/*.jsonl.gz); "
                "replaying that day from it would leave the day empty"
            )
    return root


async def load_archive(warehouse: Warehouse, job: ReplayJob) -> int:
    """Loads the job's archived events into its source table; returns how many distinct events."""
    table = source_table(job.id)
    await warehouse.run(
        warehouse.client.command,
        f"CREATE TABLE IF NOT EXISTS {table} ({STRUCTURE}) ENGINE = ReplacingMergeTree ORDER BY (ts_ms, event_id)",
    )
    # A worker taking the job over loads it again from the start.
    await warehouse.run(warehouse.client.command, f"TRUNCATE TABLE {table}")
    root = Path(job.archive)
    for day in days(job.first_day, job.last_day):
        await warehouse.run(
            warehouse.client.command,
            f"INSERT INTO {table} SELECT {COLUMNS} "  # noqa: S608 (a checked id; values are parameters)
            "FROM file({glob:String}, 'JSONEachRow', {structure:String}) "
            "WHERE tenant_id = {tenant:String} AND site_id IN {sites:Array(String)} "
            "AND toDate(fromUnixTimestamp64Milli(ts_ms), 'UTC') = {day:Date} "
            "AND length(event_id) = 32 AND match(event_id, '^[0-9a-f]+$')",
            parameters={
                "glob": day_glob(root, day),
                "structure": STRUCTURE,
                "tenant": job.tenant_id,
                "sites": list(job.site_ids),
                "day": day,
            },
        )
    result = await warehouse.run(warehouse.client.query, f"SELECT count() FROM {table} FINAL")  # noqa: S608
    return int(result.result_rows[0][0])


async def hour_of_archive(warehouse: Warehouse, job: ReplayJob, start_ms: int, end_ms: int) -> list[EventV1]:
    result = await warehouse.run(
        warehouse.client.query,
        f"SELECT {COLUMNS} FROM {source_table(job.id)} FINAL "  # noqa: S608 (a checked id)
        "WHERE ts_ms >= {start:Int64} AND ts_ms < {end:Int64} ORDER BY ts_ms, event_id",
        parameters={"start": start_ms, "end": end_ms},
    )
    return [_event(row) for row in result.result_rows]


def _event(row: Sequence[Any]) -> EventV1:
    (event_id, tenant_id, site_id, ts_ms, name, url, referrer, visitor_id, user_agent) = row[:9]
    (screen_width, props, engagement_ms, country) = row[9:]
    return EventV1(
        event_id=bytes.fromhex(event_id),
        tenant_id=tenant_id,
        site_id=site_id,
        ts_ms=int(ts_ms),
        name=name,
        url=url,
        referrer=referrer,
        visitor_id=int(visitor_id),
        user_agent=user_agent,
        screen_width=int(screen_width),
        props=dict(props),
        engagement_ms=int(engagement_ms),
        country=country,
    )
