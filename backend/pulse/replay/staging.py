"""A replay's staging table: the rebuilt raw rows, collected until the replay is complete.

One table per replay, created like `events` as it is at the time (so a column added later is
there too) but with no materialized view reading it and with duplicates folded: a worker that
crashes mid-batch stages that batch twice, and FINAL reads it once.
"""

from __future__ import annotations

import re

from pulse.warehouse.client import Warehouse

_PREFIX = "events_replay_"
# The archived events a replay from an archive reads, loaded once (pulse.replay.archive).
_SOURCE_PREFIX = "replay_source_"
_JOB_ID = re.compile("[0-9a-f]{32}")


def staging_table(job_id: str) -> str:
    return _PREFIX + _checked(job_id)


def source_table(job_id: str) -> str:
    return _SOURCE_PREFIX + _checked(job_id)


def _checked(job_id: str) -> str:
    if not _JOB_ID.fullmatch(job_id):
        raise ValueError(f"not a replay id: {job_id!r}")
    return job_id


async def create_staging(warehouse: Warehouse, job_id: str) -> None:
    await warehouse.run(
        warehouse.client.command,
        f"CREATE TABLE IF NOT EXISTS {staging_table(job_id)} AS events "
        "ENGINE = ReplacingMergeTree ORDER BY (tenant_id, site_id, event_id)",
    )


async def staging_exists(warehouse: Warehouse, job_id: str) -> bool:
    result = await warehouse.run(warehouse.client.command, f"EXISTS TABLE {staging_table(job_id)}")
    return bool(int(str(result)))


async def staged_events(warehouse: Warehouse, job_id: str) -> int:
    query = f"SELECT count() FROM {staging_table(job_id)} FINAL"  # noqa: S608 (a checked hex id)
    result = await warehouse.run(warehouse.client.query, query)
    return int(result.result_rows[0][0])


async def drop_staging(warehouse: Warehouse, job_id: str) -> None:
    """The replay's tables: its staging table and, for a replay from an archive, its source."""
    for table in (staging_table(job_id), source_table(job_id)):
        await warehouse.run(warehouse.client.command, f"DROP TABLE IF EXISTS {table}")


async def staged_job_ids(warehouse: Warehouse) -> list[str]:
    result = await warehouse.run(
        warehouse.client.query,
        "SELECT name FROM system.tables WHERE database = currentDatabase() AND startsWith(name, {prefix:String})",
        parameters={"prefix": _PREFIX},
    )
    names = (str(row[0]).removeprefix(_PREFIX) for row in result.result_rows)
    return [name for name in names if _JOB_ID.fullmatch(name)]
