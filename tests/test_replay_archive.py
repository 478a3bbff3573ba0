"""`pulse replay --from-archive` rebuilds past days from an archive of events.raw.

The archive is written in its documented layout by ClickHouse itself (INSERT INTO FUNCTION
file), from the archive lines the export plugin makes; it holds every event twice, as an
at-least-once pipeline may leave it, and a bot's event the live path dropped. Replaying from it
must rebuild what was there, as replaying from the raw table does.
"""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import msgspec

from pulse.events.archive import STRUCTURE, ArchivedEvent, archived, day_folder, day_of
from pulse.events.message import EventV1
from pulse.warehouse.client import Warehouse
from replay_days import pulse, seed
from replay_snapshot import snapshot
from stack import Stack

BOT = "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)"
_FIELDS = list(ArchivedEvent.__struct_fields__)


async def _write_archive(warehouse: Warehouse, root: Path, events: list[EventV1], name: str) -> None:
    """One file per day, `<name>.jsonl.gz`, written by ClickHouse in the archive's layout."""
    table = f"archive_lines_{uuid.uuid4().hex}"
    command = warehouse.client.command
    await warehouse.run(command, f"CREATE TABLE {table} ({STRUCTURE}) ENGINE = Memory")
    try:
        rows = [list(msgspec.structs.astuple(archived(event))) for event in events]
        await warehouse.run(warehouse.client.insert, table, rows, column_names=_FIELDS)
        for day in sorted({day_of(event.ts_ms) for event in events}):
            folder = day_folder(root, date.fromisoformat(day))
            folder.mkdir(parents=True, exist_ok=True)
            await warehouse.run(
                command,
                "INSERT INTO FUNCTION file({path:String}, 'JSONEachRow', {structure:String}) "  # noqa: S608
                f"SELECT * FROM {table} WHERE toDate(fromUnixTimestamp64Milli(ts_ms), 'UTC') = {{day:Date}}",
                parameters={"path": str(folder / f"{name}.jsonl.gz"), "structure": STRUCTURE, "day": day},
            )
    finally:
        await warehouse.run(command, f"DROP TABLE IF EXISTS {table}")


async def test_replaying_from_an_archive_rebuilds_what_was_there(stack: Stack, tmp_path: Path) -> None:
    today = datetime.now(UTC).date()
    first, last = today - timedelta(days=2), today - timedelta(days=1)
    warehouse = Warehouse(stack.settings.effective_clickhouse_url, stack.settings.clickhouse_database)
    replayed, other = await stack.tenant("Archived"), await stack.tenant("Archive bystander")
    events = await seed(stack, warehouse, [replayed, other], today)
    tenant_ids = [replayed.tenant_id, other.tenant_id]
    before = await snapshot(warehouse, tenant_ids)

    past = [event for event in events if first.isoformat() <= day_of(event.ts_ms) <= last.isoformat()]
    bot = msgspec.structs.replace(past[0], event_id=uuid.uuid4().bytes, user_agent=BOT)
    await _write_archive(warehouse, tmp_path, [*past, bot], "0-0")
    await _write_archive(warehouse, tmp_path, past, "0-0-redelivered")
    # Raw rows past their retention are gone; the rollups that counted them are not.
    await warehouse.run(
        warehouse.client.command,
        "DELETE FROM events WHERE tenant_id = {t:String} AND toDate(ts) < today()",
        parameters={"t": replayed.tenant_id},
        settings={"lightweight_deletes_sync": 2},
    )

    code, output = await pulse(
        stack,
        "replay",
        "--tenant",
        replayed.tenant_id,
        "--from",
        first.isoformat(),
        "--to",
        last.isoformat(),
        "--from-archive",
        str(tmp_path),
        "--quiet",
    )

    assert code == 0, output
    in_range = sum(1 for event in past if event.tenant_id == replayed.tenant_id)
    assert f"done: {in_range} events rebuilt and swapped in" in output
    assert await snapshot(warehouse, tenant_ids) == before


async def test_an_archive_missing_a_day_is_refused_before_anything_is_deleted(
    stack: Stack, tmp_path: Path
) -> None:
    tenant = await stack.tenant("Gap")
    today = datetime.now(UTC).date()
    (tmp_path / "events" / f"date={today - timedelta(days=2)}").mkdir(parents=True)
    (tmp_path / "events" / f"date={today - timedelta(days=2)}" / "0-0.jsonl.gz").write_bytes(b"")
    missing = today - timedelta(days=1)
    code, output = await pulse(
        stack,
        "replay",
        "--site",
        tenant.site.id,
        "--from",
        (today - timedelta(days=2)).isoformat(),
        "--to",
        missing.isoformat(),
        "--from-archive",
        str(tmp_path),
    )
    assert code == 1
    assert f"has no files for {missing}" in output
    assert "would leave the day empty" in output

    code, output = await pulse(
        stack,
        "replay",
        "--site",
        tenant.site.id,
        "--from",
        missing.isoformat(),
        "--to",
        missing.isoformat(),
        "--from-archive",
        str(tmp_path / "nowhere"),
    )
    assert code == 1
    assert "is not a folder" in output
