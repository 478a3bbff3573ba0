"""The OLTP store against real databases: each test runs on SQLite and on PostgreSQL."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path

import msgspec
import pytest
from argon2 import PasswordHasher
from sqlalchemy import make_url, text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine

from pulse.oltp.accounts import SITE_ID_ALPHABET, Accounts, DuplicateEmail, Membership
from pulse.oltp.db import create_engine
from pulse.oltp.migrate import apply_oltp_migrations
from pulse.oltp.passwords import hash_password, needs_rehash, verify_password
from pulse.settings import Settings

OLTP_MIGRATIONS = Settings().migrations_dir / "oltp"
ALL_MIGRATIONS = sorted(path.name for path in OLTP_MIGRATIONS.glob("*.sql"))

PASSWORD = "correct horse battery"
TABLES = ("tenants", "users", "memberships", "sites", "visitor_salts")


async def _count(engine: AsyncEngine, table: str) -> int:
    async with engine.connect() as conn:
        # Table names come from the TABLES constant above, never from input.
        return int((await conn.execute(text(f"SELECT count(*) FROM {table}"))).scalar_one())  # noqa: S608


async def _counts(engine: AsyncEngine) -> dict[str, int]:
    return {table: await _count(engine, table) for table in TABLES}


async def _applied(engine: AsyncEngine) -> list[str]:
    async with engine.connect() as conn:
        return list((await conn.scalars(text("SELECT name FROM schema_migrations ORDER BY name"))).all())


def _write(directory: Path, files: dict[str, str]) -> Path:
    directory.mkdir(exist_ok=True)
    for name, sql in files.items():
        (directory / name).write_text(sql)
    return directory


async def test_migrations_apply_then_reapply_as_no_op(oltp_url: str) -> None:
    engine = create_engine(oltp_url)
    try:
        assert await apply_oltp_migrations(engine, OLTP_MIGRATIONS) == ALL_MIGRATIONS
        assert await apply_oltp_migrations(engine, OLTP_MIGRATIONS) == []
        assert await _applied(engine) == ALL_MIGRATIONS
        assert await _counts(engine) == dict.fromkeys(TABLES, 0)
    finally:
        await engine.dispose()


async def test_migrations_run_in_numeric_order_and_ignore_other_files(oltp_url: str, tmp_path: Path) -> None:
    directory = _write(
        tmp_path / "migrations",
        {
            "0010_third.sql": "INSERT INTO t (n) VALUES (3);\n",
            "0002_second.sql": "-- a comment-only chunk is skipped\n;\nINSERT INTO t (n) VALUES (2);\n",
            "0001_first.sql": "CREATE TABLE t (\n    n INTEGER NOT NULL\n);\nINSERT INTO t (n) VALUES (1);",
            "README.md": "not a migration;\n",
        },
    )
    engine = create_engine(oltp_url)
    try:
        applied = await apply_oltp_migrations(engine, directory)
        assert applied == ["0001_first.sql", "0002_second.sql", "0010_third.sql"]
        async with engine.connect() as conn:
            assert list((await conn.scalars(text("SELECT n FROM t ORDER BY n"))).all()) == [1, 2, 3]
    finally:
        await engine.dispose()


async def test_failed_migration_leaves_nothing_behind(oltp_url: str, tmp_path: Path) -> None:
    directory = _write(
        tmp_path / "migrations",
        {
            "0001_ok.sql": "CREATE TABLE kept (n INTEGER);\n",
            "0002_broken.sql": "CREATE TABLE half (n INTEGER);\nINSERT INTO missing (n) VALUES (1);\n",
        },
    )
    engine = create_engine(oltp_url)
    try:
        with pytest.raises(DBAPIError):
            await apply_oltp_migrations(engine, directory)
        assert await _applied(engine) == ["0001_ok.sql"]
        # DDL is transactional on both databases, so the broken file's CREATE TABLE was undone too.
        with pytest.raises(DBAPIError):
            async with engine.connect() as conn:
                await conn.execute(text("SELECT count(*) FROM half"))

        _write(directory, {"0002_broken.sql": "CREATE TABLE half (n INTEGER);\n"})
        assert await apply_oltp_migrations(engine, directory) == ["0002_broken.sql"]
    finally:
        await engine.dispose()


async def test_racing_processes_apply_each_migration_once(oltp_url: str) -> None:
    engines = [create_engine(oltp_url) for _ in range(4)]
    try:
        results = await asyncio.gather(*(apply_oltp_migrations(e, OLTP_MIGRATIONS) for e in engines))
        assert sorted(name for result in results for name in result) == ALL_MIGRATIONS
        assert await _applied(engines[0]) == ALL_MIGRATIONS
    finally:
        for engine in engines:
            await engine.dispose()


async def test_create_tenant_user_and_site(accounts: Accounts) -> None:
    tenant = await accounts.create_tenant("  Acme Inc  ")
    assert tenant.name == "Acme Inc"
    assert await accounts.get_tenant(tenant.id) == tenant

    member = await accounts.create_user(" Ada@Example.COM ", PASSWORD, tenant.id, "owner")
    assert member == Membership(
        user_id=member.user_id, email="ada@example.com", tenant_id=tenant.id, role="owner"
    )
    assert await accounts.find_user_by_email("ADA@example.com") == member

    site = await accounts.create_site(tenant.id, "Blog", "Blog.Example.com")
    assert len(site.id) == 12
    assert set(site.id) <= set(SITE_ID_ALPHABET)
    assert (site.tenant_id, site.name, site.domain, site.disabled) == (
        tenant.id,
        "Blog",
        "blog.example.com",
        False,
    )
    assert await accounts.get_site(tenant.id, site.id) == site
    assert await accounts.list_sites(tenant.id) == [site]
    assert await accounts.find_site(site.id) == site


async def test_lookups_of_unknown_or_malformed_ids_return_nothing(accounts: Accounts) -> None:
    tenant = await accounts.create_tenant("Acme")
    # NUL is rejected by PostgreSQL's text type; both databases must answer the same.
    for site_id in ("abcdefghjkmn", "short", "ABCDEFGHJKMN", "abcdefghjkm\x00", ""):
        assert await accounts.find_site(site_id) is None
        assert await accounts.get_site(tenant.id, site_id) is None
    site = await accounts.create_site(tenant.id, "Blog", "blog.example")
    for tenant_id in ("0" * 32, "not-a-tenant", "\x00"):
        assert await accounts.get_tenant(tenant_id) is None
        assert await accounts.list_sites(tenant_id) == []
        assert await accounts.get_site(tenant_id, site.id) is None
    assert await accounts.find_user_by_email("nobody@example.com") is None
    assert await accounts.find_user_by_email("no\x00body@example.com") is None


async def test_authenticate(accounts: Accounts) -> None:
    tenant = await accounts.create_tenant("Acme")
    member = await accounts.create_user("ada@example.com", PASSWORD, tenant.id, "admin")

    assert await accounts.authenticate("  ADA@example.com", PASSWORD) == member
    assert await accounts.authenticate("ada@example.com", PASSWORD.upper()) is None
    assert await accounts.authenticate("ada@example.com", "") is None
    assert await accounts.authenticate("bob@example.com", PASSWORD) is None
    assert await accounts.authenticate("not an email", PASSWORD) is None


async def test_unknown_user_still_costs_a_hash_verification(
    accounts: Accounts, monkeypatch: pytest.MonkeyPatch
) -> None:
    verified: list[str] = []

    def spy(password_hash: str, password: str) -> bool:
        verified.append(password)
        return verify_password(password_hash, password)

    monkeypatch.setattr("pulse.oltp.accounts.verify_password", spy)
    assert await accounts.authenticate("nobody@example.com", PASSWORD) is None
    assert await accounts.authenticate("x" * 300, PASSWORD) is None
    assert verified == [PASSWORD, PASSWORD]


async def test_authenticate_upgrades_an_outdated_hash(accounts: Accounts, oltp_engine: AsyncEngine) -> None:
    tenant = await accounts.create_tenant("Acme")
    member = await accounts.create_user("ada@example.com", PASSWORD, tenant.id, "viewer")
    weak = PasswordHasher(time_cost=1, memory_cost=8192, parallelism=1).hash(PASSWORD)
    assert needs_rehash(weak)
    async with oltp_engine.begin() as conn:
        await conn.execute(
            text("UPDATE users SET password_hash = :h WHERE id = :id"), {"h": weak, "id": member.user_id}
        )

    assert await accounts.authenticate("ada@example.com", "wrong password") is None
    async with oltp_engine.connect() as conn:
        assert (await conn.scalars(text("SELECT password_hash FROM users"))).one() == weak

    assert await accounts.authenticate("ada@example.com", PASSWORD) == member
    async with oltp_engine.connect() as conn:
        upgraded = (await conn.scalars(text("SELECT password_hash FROM users"))).one()
    assert upgraded != weak
    assert not needs_rehash(upgraded)
    assert verify_password(upgraded, PASSWORD)


async def test_duplicate_email_rejected(accounts: Accounts, oltp_engine: AsyncEngine) -> None:
    first = await accounts.create_tenant("First")
    second = await accounts.create_tenant("Second")
    await accounts.create_user("ada@example.com", PASSWORD, first.id, "owner")
    with pytest.raises(DuplicateEmail, match=r"ada@example\.com"):
        await accounts.create_user("ADA@Example.com", "another password", second.id, "owner")
    assert await _count(oltp_engine, "users") == 1
    assert await _count(oltp_engine, "memberships") == 1


async def test_concurrent_signups_with_one_email_create_one_user(
    oltp_url: str, oltp_engine: AsyncEngine
) -> None:
    tenant = await Accounts(oltp_engine).create_tenant("Acme")
    engines = [oltp_engine, *(create_engine(oltp_url) for _ in range(3))]
    try:
        # Differently cased, as if typed by different people.
        emails = ["ada@example.com", "Ada@example.com", "ADA@example.com", "ada@EXAMPLE.com"]
        results = await asyncio.gather(
            *(
                Accounts(e).create_user(m, PASSWORD, tenant.id, "owner")
                for e, m in zip(engines, emails, strict=True)
            ),
            return_exceptions=True,
        )
    finally:
        for engine in engines[1:]:
            await engine.dispose()
    assert sum(isinstance(r, Membership) for r in results) == 1
    assert sum(isinstance(r, DuplicateEmail) for r in results) == len(engines) - 1
    assert await _count(oltp_engine, "users") == 1


async def test_tenants_cannot_see_each_others_sites(accounts: Accounts) -> None:
    tenant_a = await accounts.create_tenant("A")
    tenant_b = await accounts.create_tenant("B")
    site_a = await accounts.create_site(tenant_a.id, "A site", "a.example")
    site_b = await accounts.create_site(tenant_b.id, "B site", "b.example")

    assert await accounts.get_site(tenant_a.id, site_b.id) is None
    assert await accounts.get_site(tenant_b.id, site_a.id) is None
    assert await accounts.list_sites(tenant_a.id) == [site_a]
    assert await accounts.list_sites(tenant_b.id) == [site_b]
    # The collector's unscoped lookup maps each public key to its own tenant.
    assert await accounts.find_site(site_a.id) == site_a
    assert await accounts.find_site(site_b.id) == site_b


async def test_allowed_hosts_and_disabling_are_scoped_to_the_owning_tenant(accounts: Accounts) -> None:
    owner = await accounts.create_tenant("Owner")
    other = await accounts.create_tenant("Other")
    site = await accounts.create_site(owner.id, "Shop", "shop.example")

    updated = await accounts.set_allowed_hosts(
        owner.id, site.id, ["Shop.Example.", "*.shop.example", "shop.example"]
    )
    assert updated.allowed_hosts == ("shop.example", "*.shop.example")
    assert await accounts.find_site(site.id) == updated
    assert (await accounts.set_disabled(owner.id, site.id, True)).disabled
    assert (await accounts.find_site(site.id)).disabled  # type: ignore[union-attr]
    for host in ("shop example", "*.", "-bad.example", "a" * 64 + ".example", "shop.example/path"):
        with pytest.raises(ValueError, match="is not a hostname"):
            await accounts.set_allowed_hosts(owner.id, site.id, [host])
    with pytest.raises(ValueError, match="at most 50 allowed hosts"):
        await accounts.set_allowed_hosts(owner.id, site.id, [f"h{i}.example" for i in range(51)])
    with pytest.raises(ValueError, match="unknown site"):
        await accounts.set_allowed_hosts(other.id, site.id, [])
    with pytest.raises(ValueError, match="unknown site"):
        await accounts.set_disabled(other.id, site.id, False)
    assert await accounts.find_site(site.id) == msgspec.structs.replace(updated, disabled=True)


async def test_tenant_retention_defaults_to_400_days_and_is_bounded(accounts: Accounts) -> None:
    tenant = await accounts.create_tenant("Plan")
    assert (await accounts.get_tenant(tenant.id)).retention_days == 400  # type: ignore[union-attr]
    assert (await accounts.set_retention(tenant.id, 30)).retention_days == 30
    assert (await accounts.retention_by_tenant())[tenant.id] == 30
    for days in (0, 3651):
        with pytest.raises(ValueError, match="retention must be 1 to 3650 days"):
            await accounts.set_retention(tenant.id, days)
    with pytest.raises(ValueError, match="unknown tenant"):
        await accounts.set_retention("f" * 32, 30)
    planned = await accounts.create_tenant("Short plan", retention_days=1)
    assert (await accounts.retention_by_tenant())[planned.id] == 1
    for days in (0, 3651):
        with pytest.raises(ValueError, match="retention must be 1 to 3650 days"):
            await accounts.create_tenant("Bad plan", retention_days=days)


def _invalid_calls(tenant_id: str) -> list[Callable[[Accounts], Awaitable[object]]]:
    return [
        lambda a: a.create_tenant("x" * 256),
        lambda a: a.create_tenant("   "),
        lambda a: a.create_tenant("line\nbreak"),
        lambda a: a.create_user("no-at-sign.example.com", PASSWORD, tenant_id, "owner"),
        lambda a: a.create_user("two@@example.com", PASSWORD, tenant_id, "owner"),
        lambda a: a.create_user("@example.com", PASSWORD, tenant_id, "owner"),
        lambda a: a.create_user("a b@example.com", PASSWORD, tenant_id, "owner"),
        lambda a: a.create_user("a" * 243 + "@example.com", PASSWORD, tenant_id, "owner"),
        lambda a: a.create_user("ada@example.com", "short", tenant_id, "owner"),
        lambda a: a.create_user("ada@example.com", "p" * 1025, tenant_id, "owner"),
        lambda a: a.create_user("ada@example.com", PASSWORD, tenant_id, "root"),
        lambda a: a.create_user("ada@example.com", PASSWORD, "f" * 32, "owner"),
        lambda a: a.create_user("ada@example.com", PASSWORD, "\x00", "owner"),
        lambda a: a.create_site(tenant_id, "n" * 256, "example.com"),
        lambda a: a.create_site(tenant_id, "Blog", "d" * 256),
        lambda a: a.create_site(tenant_id, "", "example.com"),
        lambda a: a.create_site("f" * 32, "Blog", "example.com"),
    ]


async def test_invalid_input_is_rejected_with_nothing_written(
    accounts: Accounts, oltp_engine: AsyncEngine
) -> None:
    tenant = await accounts.create_tenant("Acme")
    before = await _counts(oltp_engine)
    for call in _invalid_calls(tenant.id):
        with pytest.raises(ValueError, match=r"must|unknown tenant"):
            await call(accounts)
    assert await _counts(oltp_engine) == before
    # The limits are inclusive: the longest allowed values are accepted.
    await accounts.create_tenant("x" * 255)
    await accounts.create_user("a" * 242 + "@example.com", "p" * 8, tenant.id, "viewer")
    await accounts.create_site(tenant.id, "n" * 255, "d" * 255)


async def test_two_engines_share_one_database(oltp_url: str, oltp_engine: AsyncEngine) -> None:
    """Like the collector and the dashboard, two processes each with an engine on the same database."""
    dashboard = Accounts(oltp_engine)
    other_engine = create_engine(oltp_url)
    collector = Accounts(other_engine)
    try:
        tenant = await dashboard.create_tenant("Acme")
        site = await dashboard.create_site(tenant.id, "Blog", "blog.example")
        assert await collector.find_site(site.id) == site

        # Concurrent writers on both engines: SQLite serialises them through the busy timeout.
        writers = [dashboard, collector] * 10
        created = await asyncio.gather(*(w.create_site(tenant.id, "Site", "example.com") for w in writers))
        assert sorted(s.id for s in await collector.list_sites(tenant.id)) == sorted(
            [site.id, *(s.id for s in created)]
        )

        if other_engine.dialect.name == "sqlite":
            async with other_engine.connect() as conn:
                assert (await conn.exec_driver_sql("PRAGMA journal_mode")).scalar_one() == "wal"
                assert (await conn.exec_driver_sql("PRAGMA foreign_keys")).scalar_one() == 1
                assert (await conn.exec_driver_sql("PRAGMA busy_timeout")).scalar_one() > 0
    finally:
        await other_engine.dispose()


@pytest.mark.parametrize(
    ("url", "driver"),
    [
        ("sqlite:///relative.db", "sqlite+aiosqlite"),
        ("sqlite+aiosqlite:////abs/pulse.db", "sqlite+aiosqlite"),
        ("postgresql://u:p@db:5432/pulse", "postgresql+asyncpg"),
        ("postgres://u:p@db/pulse", "postgresql+asyncpg"),
        ("postgresql+asyncpg://u@db/pulse", "postgresql+asyncpg"),
    ],
)
async def test_database_urls_are_normalised_to_async_drivers(url: str, driver: str) -> None:
    engine = create_engine(url)
    try:
        assert engine.url == make_url(url).set(drivername=driver)
    finally:
        await engine.dispose()


async def test_libpq_sslmode_is_passed_to_asyncpg_as_ssl() -> None:
    engine = create_engine("postgres://u:p@db/pulse?sslmode=require")
    try:
        assert dict(engine.url.query) == {"ssl": "require"}
    finally:
        await engine.dispose()


@pytest.mark.parametrize("url", ["mysql://root:secret@db/pulse", "postgresql+psycopg2://u@db/x", "pulse.db"])
def test_unsupported_database_urls_are_rejected(url: str) -> None:
    with pytest.raises(ValueError, match="scheme") as raised:
        create_engine(url)
    assert "secret" not in str(raised.value)


def test_password_helpers_answer_instead_of_raising() -> None:
    hashed = hash_password(PASSWORD)
    assert verify_password(hashed, PASSWORD)
    assert not verify_password(hashed, "wrong password")
    assert not verify_password("not a hash", PASSWORD)
    assert not verify_password("", PASSWORD)
    assert not needs_rehash(hashed)
    assert needs_rehash("not a hash")
