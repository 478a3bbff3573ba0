"""Handlers reach ClickHouse and Redis only through objects that ask for a tenant scope.

The dashboard's app factory is the one place that holds the raw clients: it wraps them in
tenant-scoped readers and hands handlers only those. These tests fail when a handler module
imports a raw client, or when any dependency a handler can be given exposes one.
"""

from __future__ import annotations

import ast
import inspect
from collections.abc import Iterator
from pathlib import Path

import msgspec
import pytest
from clickhouse_connect.driver.client import Client
from litestar import Litestar
from litestar.di import Provide
from redis.asyncio import Redis
from sqlalchemy.ext.asyncio import AsyncEngine

from pulse.dashboard.app import create_dashboard_app
from pulse.resources import Resources
from pulse.warehouse.client import Warehouse
from pulse.warehouse.reader import ScopedReader
from stack import Stack

DASHBOARD = Path(__file__).resolve().parents[1] / "backend" / "pulse" / "dashboard"
# The factory wires the raw clients into scoped readers; every other module is handler code.
WIRING = {"app.py"}
RAW_CLIENT_MODULES = (
    "clickhouse_connect",
    "chdb",
    "redis",
    "sqlalchemy",
    "pulse.warehouse.client",
    "pulse.resources",
    "pulse.oltp.db",
)
RAW_CLIENTS = (Warehouse, Client, Redis, AsyncEngine, Resources)


def _imports(path: Path) -> Iterator[str]:
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            yield node.module


@pytest.mark.parametrize("module", sorted(p.name for p in DASHBOARD.glob("*.py") if p.name not in WIRING))
def test_handler_modules_do_not_import_a_raw_client(module: str) -> None:
    leaks = [
        name
        for name in _imports(DASHBOARD / module)
        if any(name == raw or name.startswith(f"{raw}.") for raw in RAW_CLIENT_MODULES)
        # Catching a client's errors is not using the client.
        and not name.endswith(".exceptions")
    ]
    assert leaks == [], f"{module} imports {leaks}: handlers read through pulse.warehouse.reader / pulse.live"


def _reachable(value: object, depth: int = 2) -> Iterator[object]:
    """The value and what its public attributes lead to: what a handler can get at without `_`."""
    yield value
    if depth == 0 or isinstance(value, str | int | float | bool | bytes | type(None)):
        return
    names = value.__struct_fields__ if isinstance(value, msgspec.Struct) else dir(value)
    for name in names:
        if name.startswith("_"):
            continue
        attribute = inspect.getattr_static(value, name, None)
        if callable(attribute) or isinstance(attribute, property | staticmethod | classmethod):
            continue
        yield from _reachable(getattr(value, name), depth - 1)


async def test_no_dependency_gives_a_handler_a_raw_client(stack: Stack) -> None:
    settings = msgspec.structs.replace(stack.settings, metrics_enabled=False)
    resources = Resources(settings)
    app = create_dashboard_app(resources)
    try:
        assert isinstance(app, Litestar)
        provided = {
            name: provide.dependency if isinstance(provide, Provide) else provide
            for name, provide in app.dependencies.items()
        }
        assert "stats" in provided
        leaks = []
        for name, provider in provided.items():
            value = provider()
            if inspect.isawaitable(value):
                value = await value
            leaks += [
                f"{name} -> {type(v).__name__}" for v in _reachable(value) if isinstance(v, RAW_CLIENTS)
            ]
        assert leaks == []
    finally:
        await resources.close()


def test_the_scoped_reader_offers_only_scoped_queries() -> None:
    public = [name for name in dir(ScopedReader) if not name.startswith("_")]
    # `write` is an INSERT … SELECT of the scope's own rows: the folds the read path keeps.
    assert public == ["select", "write"]
    for method in (ScopedReader.select, ScopedReader.write):
        parameters = list(inspect.signature(method).parameters)
        assert parameters[:3] == ["self", "scope", "query"]
