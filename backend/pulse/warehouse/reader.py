"""The only read path into ClickHouse: named queries run inside a tenant scope.

A `ScopedQuery` cannot be constructed unless its SQL filters on the bound
`{tenant_id:String}` parameter and names every table it reads as `{db:Identifier}.table`.
`ScopedReader.select` fills both from the scope: the tenant's id, and the database its
data lives in (the shared one, or its own when an operator moved it there), so a caller
cannot forget either or pass another tenant's.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Protocol

from clickhouse_connect.driver.exceptions import ClickHouseError

from pulse.breaker import CircuitBreaker, DependencyDown
from pulse.tenancy import TenantScope
from pulse.warehouse.client import Warehouse

TENANT_FILTER = "tenant_id = {tenant_id:String}"
DATABASE = "{db:Identifier}"
# A FROM or JOIN that reads neither a subquery nor a table of the tenant's database.
_UNROUTED_TABLE = re.compile(r"(?<!ARRAY )\b(?:FROM|JOIN)\s+(?!\(|\{db:Identifier\}\.)", re.IGNORECASE)


class ScopedQuery:
    __slots__ = ("name", "sql")

    def __init__(self, name: str, sql: str) -> None:
        if TENANT_FILTER not in sql:
            raise ValueError(f"query {name!r} does not filter on {TENANT_FILTER}")
        if _UNROUTED_TABLE.search(sql):
            raise ValueError(f"query {name!r} reads a table not named as {DATABASE}.table")
        self.name = name
        self.sql = sql


class WarehouseUnavailable(Exception):
    """ClickHouse could not answer a read; the figures cannot be shown, nothing else is wrong."""

    def __init__(self, reason: str, retry_after_s: float) -> None:
        super().__init__(reason)
        self.reason = reason
        self.retry_after_s = retry_after_s


# What ClickHouse (a server over HTTP, or chDB) raises when it cannot answer: unreachable,
# overloaded, or a table it cannot read right now.
WAREHOUSE_FAILURES = (ClickHouseError, OSError)


class TenantDatabases(Protocol):
    async def database(self, tenant_id: str) -> str:
        """The ClickHouse database holding the tenant's events and rollups."""
        ...


class SharedDatabase:
    """Every tenant in the shared tables: the default tier."""

    def __init__(self, name: str) -> None:
        self._name = name

    async def database(self, tenant_id: str) -> str:
        return self._name


class ScopedReader:
    def __init__(
        self, warehouse: Warehouse, databases: TenantDatabases, breaker: CircuitBreaker | None = None
    ) -> None:
        self._warehouse = warehouse
        self._databases = databases
        self._breaker = breaker or CircuitBreaker("clickhouse")

    async def select(
        self, scope: TenantScope, query: ScopedQuery, params: Mapping[str, Any]
    ) -> Sequence[Sequence[Any]]:
        bound = await self._bound(scope, params)
        result = await self._call(lambda: self._warehouse.client.query(query.sql, parameters=bound))
        return result.result_rows

    async def write(self, scope: TenantScope, query: ScopedQuery, params: Mapping[str, Any]) -> None:
        """An INSERT … SELECT of the scope's own rows: a rollup the read path keeps (pulse.stats.visit_days)."""
        bound = await self._bound(scope, params)
        await self._call(lambda: self._warehouse.client.command(query.sql, parameters=bound))

    async def _bound(self, scope: TenantScope, params: Mapping[str, Any]) -> dict[str, Any]:
        if "tenant_id" in params or "db" in params:
            raise ValueError("tenant_id and db come from the scope, not from parameters")
        return {**params, "tenant_id": scope.tenant_id, "db": await self._databases.database(scope.tenant_id)}

    async def _call[T](self, call: Callable[[], T]) -> T:
        try:
            return await self._breaker.call(lambda: self._warehouse.run(call), WAREHOUSE_FAILURES)
        except DependencyDown as exc:
            raise WarehouseUnavailable("ClickHouse failed repeatedly", exc.retry_after_s) from exc
        except WAREHOUSE_FAILURES as exc:
            raise WarehouseUnavailable(f"ClickHouse could not answer ({type(exc).__name__})", 5.0) from exc
