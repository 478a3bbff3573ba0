"""Real-database fixtures for the OLTP store, on SQLite and on a PostgreSQL the suite starts itself.

tests/conftest.py loads this module as a plugin, so its fixtures are available to every test. A test
using `oltp_url` (directly or through `oltp_engine` / `accounts`) runs twice: on a fresh SQLite file
and on a fresh PostgreSQL database. The PostgreSQL runs are skipped, with the reason, where no
PostgreSQL server is installed.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from pulse.embedded.services import free_port
from pulse.oltp.accounts import Accounts
from pulse.oltp.db import create_engine
from pulse.oltp.migrate import apply_oltp_migrations
from pulse.settings import Settings

OLTP_MIGRATIONS = Settings().migrations_dir / "oltp"


@dataclass(frozen=True)
class PostgresCluster:
    host: str
    port: int

    def url(self, database: str) -> str:
        return f"postgresql://postgres@{self.host}:{self.port}/{database}"

    async def admin(self, statement: str) -> None:
        engine = create_engine(self.url("postgres"))
        try:
            async with engine.connect() as conn:
                # CREATE and DROP DATABASE cannot run inside a transaction.
                autocommit = await conn.execution_options(isolation_level="AUTOCOMMIT")
                await autocommit.exec_driver_sql(statement)
        finally:
            await engine.dispose()


def _postgres_bin_dir() -> Path | None:
    """The newest /usr/lib/postgresql/N/bin (Debian's layout), else wherever pg_ctl is on PATH."""
    candidates = sorted(
        Path("/usr/lib/postgresql").glob("*/bin/pg_ctl"),
        key=lambda path: int(path.parts[-3]) if path.parts[-3].isdigit() else -1,
    )
    if candidates:
        return candidates[-1].parent
    on_path = shutil.which("pg_ctl")
    return Path(on_path).parent if on_path else None


_INITDB_FLAGS = ("--no-locale", "--encoding=UTF8", "--no-sync", "--username=postgres", "--auth=trust")


def _run(command: list[str]) -> None:
    result = subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)
    if result.returncode != 0:
        raise RuntimeError(
            f"{' '.join(command)} failed ({result.returncode}):\n{result.stdout}{result.stderr}"
        )


@pytest.fixture(scope="session")
def pg_cluster() -> Iterator[PostgresCluster]:
    """A throwaway PostgreSQL cluster on a free port, never the system's own server."""
    bin_dir = _postgres_bin_dir()
    if bin_dir is None or not (bin_dir / "initdb").exists():
        pytest.skip(
            "PostgreSQL server binaries (initdb, pg_ctl) not found in /usr/lib/postgresql/*/bin or PATH"
        )
    root = Path(tempfile.mkdtemp(prefix="pulse-pg-"))
    data, sockets, log, port = root / "data", root / "sockets", root / "server.log", free_port()
    sockets.mkdir()
    run_as: list[str] = []
    if os.geteuid() == 0:
        # PostgreSQL refuses to run as root.
        for path in (root, sockets):
            shutil.chown(path, user="postgres", group="postgres")
        run_as = ["runuser", "-u", "postgres", "--"]

    def tool(name: str, *args: str) -> None:
        _run([*run_as, str(bin_dir / name), *args])

    # Durability is pointless for a cluster deleted after the run, and costs time.
    options = f"-c listen_addresses=127.0.0.1 -p {port} -k {sockets} -c fsync=off -c full_page_writes=off"
    try:
        tool("initdb", *_INITDB_FLAGS, f"--pgdata={data}")
        try:
            tool("pg_ctl", "start", "-w", "-t", "60", "-D", str(data), "-l", str(log), "-o", options)
        except RuntimeError as exc:
            raise RuntimeError(f"{exc}\n{log.read_text() if log.exists() else ''}") from None
        yield PostgresCluster(host="127.0.0.1", port=port)
    finally:
        if (data / "postmaster.pid").exists():
            tool("pg_ctl", "stop", "-m", "immediate", "-D", str(data))
        shutil.rmtree(root)


@pytest.fixture(params=["sqlite", "postgresql"])
async def oltp_url(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[str]:
    """The URL of an empty database of its own, for this test only."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'pulse.db'}"
        return
    cluster: PostgresCluster = request.getfixturevalue("pg_cluster")
    database = f"pulse_test_{uuid.uuid4().hex}"
    await cluster.admin(f'CREATE DATABASE "{database}"')
    try:
        yield cluster.url(database)
    finally:
        await cluster.admin(f'DROP DATABASE "{database}" WITH (FORCE)')


@pytest.fixture
async def oltp_engine(oltp_url: str) -> AsyncIterator[AsyncEngine]:
    """An engine on `oltp_url` with the OLTP migrations applied."""
    engine = create_engine(oltp_url)
    try:
        await apply_oltp_migrations(engine, OLTP_MIGRATIONS)
        yield engine
    finally:
        await engine.dispose()


@pytest.fixture
def accounts(oltp_engine: AsyncEngine) -> Accounts:
    return Accounts(oltp_engine)
