"""The warehouse connects on its first call, and a failed connection is tried again by the next;
embedded, calls run side by side, each thread on a chDB handle of its own."""

from __future__ import annotations

import asyncio
import time

import pytest
from clickhouse_connect.driver.exceptions import OperationalError

from pulse.embedded.services import free_port
from pulse.warehouse.client import Warehouse
from stack import Stack


async def test_no_connection_until_the_first_call_then_one_kept(stack: Stack) -> None:
    # The stack's engine: a process holds one chDB data path.
    warehouse = Warehouse(stack.settings.effective_clickhouse_url, "lazy")
    try:
        assert not warehouse.client.connected
        result = await warehouse.run(warehouse.client.query, "SELECT currentDatabase()")
        assert result.result_rows == [("lazy",)]
        assert warehouse.client.connected
        assert (await warehouse.run(warehouse.client.command, "SELECT 1")) == 1
    finally:
        warehouse.close()
    assert not warehouse.client.connected


async def test_embedded_calls_run_side_by_side_each_in_its_own_database(stack: Stack) -> None:
    warehouse = Warehouse(stack.settings.effective_clickhouse_url, "side_by_side")
    try:
        started = time.monotonic()
        # sleep() holds a handle without using a core: queued on one handle, two take a second.
        found = await asyncio.gather(
            *(warehouse.run(warehouse.client.query, "SELECT currentDatabase(), sleep(0.5)") for _ in range(2))
        )
        elapsed = time.monotonic() - started
        assert [r.result_rows for r in found] == [[("side_by_side", 0)]] * 2
        assert elapsed < 0.95, f"two half-second calls took {elapsed:.2f} s: one waited for the other"
    finally:
        warehouse.close()


async def test_an_unreachable_server_fails_each_call_without_failing_the_start() -> None:
    warehouse = Warehouse(f"http://127.0.0.1:{free_port()}", "lazy")
    try:
        for _ in range(2):
            with pytest.raises(OperationalError):
                await warehouse.run(warehouse.client.query, "SELECT 1")
            assert not warehouse.client.connected
    finally:
        warehouse.close()
