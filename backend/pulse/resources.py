"""Connections a process opens once and shares between the roles it runs.

A chDB data path belongs to one process, so when the rollup worker and the dashboard run
together they must share one Warehouse; the others are shared because they are pools.
"""

from __future__ import annotations

import functools

from redis.asyncio import Redis
from sqlalchemy.ext.asyncio import AsyncEngine

from pulse.oltp.accounts import Accounts
from pulse.oltp.db import create_engine
from pulse.settings import Settings
from pulse.telemetry.metrics import Metrics, process_metrics
from pulse.warehouse.client import Warehouse
from pulse.warehouse.routing import TenantDatabaseRouting


class Resources:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    @functools.cached_property
    def warehouse(self) -> Warehouse:
        settings = self.settings
        return Warehouse(
            settings.effective_clickhouse_url, settings.clickhouse_database, settings.clickhouse_cluster
        )

    @functools.cached_property
    def tenant_databases(self) -> TenantDatabaseRouting:
        """One per process: the dashboard reads and the worker writes by the same map."""
        settings = self.settings
        return TenantDatabaseRouting(
            settings.clickhouse_database,
            Accounts(self.engine).clickhouse_databases,
            settings.tenant_database_cache_s,
        )

    @functools.cached_property
    def redis(self) -> Redis:
        return Redis.from_url(self.settings.redis_url, socket_timeout=5, socket_connect_timeout=2)

    @functools.cached_property
    def engine(self) -> AsyncEngine:
        return create_engine(self.settings.effective_database_url)

    @property
    def metrics(self) -> Metrics:
        return process_metrics(self.settings.metrics_enabled)

    async def close(self) -> None:
        if "redis" in self.__dict__:
            await self.redis.aclose()
        if "engine" in self.__dict__:
            await self.engine.dispose()
        if "warehouse" in self.__dict__:
            self.warehouse.close()
