"""Routing by tenant database: read from the OLTP store (SQLite and PostgreSQL), used at most a TTL."""

from __future__ import annotations

import pytest

from fake_clock import FakeClock
from pulse.oltp.accounts import Accounts
from pulse.warehouse.routing import TenantDatabaseRouting

TTL_S = 2.0


async def test_a_tenant_moved_is_routed_to_its_database_once_the_map_expires(accounts: Accounts) -> None:
    stays, moves = await accounts.create_tenant("Stays"), await accounts.create_tenant("Moves")
    clock = FakeClock()
    routing = TenantDatabaseRouting("pulse", accounts.clickhouse_databases, TTL_S, clock)
    assert await routing.database(moves.id) == "pulse"

    moved = await accounts.set_clickhouse_database(moves.id, "pulse_t_moves")
    assert moved.clickhouse_database == "pulse_t_moves"
    assert (await accounts.get_tenant(moves.id)).clickhouse_database == "pulse_t_moves"  # type: ignore[union-attr]
    clock.now = TTL_S - 0.01
    assert await routing.database(moves.id) == "pulse"
    clock.now = TTL_S
    assert await routing.database(moves.id) == "pulse_t_moves"
    assert await routing.database(stays.id) == "pulse"
    assert await routing.databases() == ["pulse_t_moves"]
    assert (await accounts.get_tenant(stays.id)).clickhouse_database == ""  # type: ignore[union-attr]


async def test_while_the_store_cannot_be_read_the_last_map_is_kept_and_before_any_it_fails(
    accounts: Accounts,
) -> None:
    tenant = await accounts.create_tenant("Outage")
    await accounts.set_clickhouse_database(tenant.id, "pulse_t_outage")
    down = False

    async def source() -> dict[str, str]:
        if down:
            raise OSError("connection refused")
        return await accounts.clickhouse_databases()

    clock = FakeClock()
    never_read = TenantDatabaseRouting("pulse", source, TTL_S, clock)
    routing = TenantDatabaseRouting("pulse", source, TTL_S, clock)
    assert await routing.database(tenant.id) == "pulse_t_outage"
    down = True
    clock.now = TTL_S * 3
    assert await routing.database(tenant.id) == "pulse_t_outage"
    with pytest.raises(OSError, match="connection refused"):
        await never_read.database(tenant.id)
