"""The only read path into ClickHouse: named queries run inside a tenant scope.

A `ScopedQuery` cannot be constructed unless its SQL filters on the bound
`{tenant_id:String}` parameter, and `ScopedReader.select` fills that parameter from the
scope, so a caller cannot forget it or pass another tenant's id.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from pulse.tenancy import TenantScope
from pulse.warehouse.client import Warehouse

TENANT_FILTER = "tenant_id = {tenant_id:String}"


class ScopedQuery:
    __slots__ = ("name", "sql")

    def __init__(self, name: str, sql: str) -> None:
        if TENANT_FILTER not in sql:
            raise ValueError(f"query {name!r} does not filter on {TENANT_FILTER}")
        self.name = name
        self.sql = sql


class ScopedReader:
    def __init__(self, warehouse: Warehouse) -> None:
        self._warehouse = warehouse

    async def select(
        self, scope: TenantScope, query: ScopedQuery, params: Mapping[str, Any]
    ) -> Sequence[Sequence[Any]]:
        if "tenant_id" in params:
            raise ValueError("tenant_id comes from the scope, not from parameters")
        bound = {**params, "tenant_id": scope.tenant_id}
        result = await self._warehouse.run(self._warehouse.client.query, query.sql, parameters=bound)
        return result.result_rows
