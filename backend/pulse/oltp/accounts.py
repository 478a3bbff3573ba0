"""Tenants, their users and sites: the account data the dashboard writes and the collector reads."""

from __future__ import annotations

import asyncio
import functools
import re
import secrets
import time
import uuid
import zoneinfo
from collections.abc import Callable, Sequence
from typing import Any, Literal, get_args

import msgspec
from sqlalchemy import BigInteger, Column, Integer, MetaData, Row, Select, Table, Text, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine

from pulse.oltp.passwords import hash_password, needs_rehash, verify_password
from pulse.oltp.text_checks import has_control_characters, line_refusal
from pulse.tenancy import Role

ROLES: tuple[Role, ...] = get_args(Role)
# How a site tells visitors apart: a daily-rotating hash of IP and User-Agent, or the tracker's
# first-party id kept in the browser (data-visitor="cookie").
VisitorMode = Literal["cookieless", "cookie"]
VISITOR_MODES: tuple[VisitorMode, ...] = get_args(VisitorMode)

MAX_NAME_LENGTH = 255
MAX_EMAIL_LENGTH = 254
MIN_PASSWORD_LENGTH = 8
# Bounds the work one login request can ask of the hasher.
MAX_PASSWORD_LENGTH = 1024
SITE_ID_LENGTH = 12
# Lower-case and URL-safe, without 0/o and 1/i/l, so a key read off a screen is typed right.
SITE_ID_ALPHABET = "abcdefghjkmnpqrstuvwxyz23456789"

# Lookups check an id's shape before querying: keys from the internet that cannot exist are answered
# without a round trip, and SQLite and PostgreSQL (which rejects NUL in text) answer alike.
_SITE_ID = re.compile(f"[{SITE_ID_ALPHABET}]{{{SITE_ID_LENGTH}}}")
_HEX_ID = re.compile("[0-9a-f]{32}")
_HOST_LABEL = re.compile("[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?")
MAX_ALLOWED_HOSTS = 50
DEFAULT_RETENTION_DAYS = 400
MAX_RETENTION_DAYS = 3650
DEFAULT_TIMEZONE = "UTC"


class Tenant(msgspec.Struct, frozen=True, kw_only=True):
    id: str
    name: str
    created_at: int
    # How long raw events are kept (the plan); rollups are kept regardless.
    retention_days: int = DEFAULT_RETENTION_DAYS
    # Where its events and rollups live in ClickHouse: '' for the shared database, or its own
    # (`pulse tenant isolate`).
    clickhouse_database: str = ""


class Site(msgspec.Struct, frozen=True, kw_only=True):
    id: str
    tenant_id: str
    name: str
    domain: str
    disabled: bool
    created_at: int
    # Hostnames the collector accepts this site's events from; empty accepts any.
    allowed_hosts: tuple[str, ...] = ()
    # The IANA zone the site's days start in for reports.
    timezone: str = DEFAULT_TIMEZONE
    visitor_mode: VisitorMode = "cookieless"


class Membership(msgspec.Struct, frozen=True, kw_only=True):
    user_id: str
    email: str
    tenant_id: str
    role: Role


class FieldRefused(ValueError):
    """A value refused, naming its field; the message is "field: reason"."""

    def __init__(self, field: str, reason: str) -> None:
        super().__init__(f"{field}: {reason}")
        self.field = field
        self.reason = reason


async def tenant_has_site(engine: AsyncEngine, tenant_id: str, site_id: str) -> bool:
    query = select(SITES.c.id).where(SITES.c.id == site_id, SITES.c.tenant_id == tenant_id)
    async with engine.connect() as conn:
        return (await conn.execute(query)).first() is not None


class InvalidSite(ValueError):
    """A site setting refused; `field` names it (name, domain, allowed_hosts, timezone or visitor_mode)."""

    def __init__(self, field: str, reason: str) -> None:
        super().__init__(reason)
        self.field = field
        self.reason = reason


class DuplicateEmail(Exception):
    def __init__(self, email: str) -> None:
        super().__init__(f"a user with email {email!r} already exists")
        self.email = email


_metadata = MetaData()
TENANTS = Table(
    "tenants",
    _metadata,
    Column("id", Text, primary_key=True),
    Column("name", Text),
    Column("created_at", BigInteger),
    Column("retention_days", Integer),
    Column("clickhouse_database", Text),
)
USERS = Table(
    "users",
    _metadata,
    Column("id", Text, primary_key=True),
    Column("email", Text),
    Column("password_hash", Text),
    Column("created_at", BigInteger),
)
MEMBERSHIPS = Table(
    "memberships",
    _metadata,
    Column("user_id", Text, primary_key=True),
    Column("tenant_id", Text, primary_key=True),
    Column("role", Text),
)
SITES = Table(
    "sites",
    _metadata,
    Column("id", Text, primary_key=True),
    Column("tenant_id", Text),
    Column("name", Text),
    Column("domain", Text),
    Column("disabled", Integer),
    Column("created_at", BigInteger),
    Column("allowed_hosts", Text),
    Column("timezone", Text),
    Column("visitor_mode", Text),
)

# A user normally belongs to one tenant; with several, the oldest tenant is the one they sign in to.
_MEMBERSHIP = (
    select(USERS.c.id, USERS.c.email, USERS.c.password_hash, MEMBERSHIPS.c.tenant_id, MEMBERSHIPS.c.role)
    .select_from(
        USERS.join(MEMBERSHIPS, MEMBERSHIPS.c.user_id == USERS.c.id).join(
            TENANTS, TENANTS.c.id == MEMBERSHIPS.c.tenant_id
        )
    )
    .order_by(TENANTS.c.created_at, TENANTS.c.id)
    .limit(1)
)


class Accounts:
    """Every query binds its values; tenant-facing reads are scoped by tenant id."""

    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine

    async def create_tenant(self, name: str, retention_days: int = DEFAULT_RETENTION_DAYS) -> Tenant:
        """A tenant starts on its plan's retention, so no event is ever stamped with another."""
        tenant = Tenant(
            id=uuid.uuid4().hex,
            name=_checked_text(name, "tenant name"),
            created_at=_now_ms(),
            retention_days=_checked_retention(retention_days),
        )
        async with self._engine.begin() as conn:
            await conn.execute(TENANTS.insert().values(msgspec.structs.asdict(tenant)))
        return tenant

    async def get_tenant(self, tenant_id: str) -> Tenant | None:
        if not _HEX_ID.fullmatch(tenant_id):
            return None
        async with self._engine.connect() as conn:
            row = (await conn.execute(select(TENANTS).where(TENANTS.c.id == tenant_id))).first()
        return None if row is None else _tenant(row)

    async def set_retention(self, tenant_id: str, days: int) -> Tenant:
        _checked_retention(days)
        tenant = await self.get_tenant(tenant_id)
        if tenant is None:
            raise _unknown_tenant(tenant_id)
        async with self._engine.begin() as conn:
            await conn.execute(update(TENANTS).where(TENANTS.c.id == tenant_id).values(retention_days=days))
        return msgspec.structs.replace(tenant, retention_days=days)

    async def set_clickhouse_database(self, tenant_id: str, database: str) -> Tenant:
        """Only for `pulse tenant isolate`, which has created the database and its tables first."""
        tenant = await self.get_tenant(tenant_id)
        if tenant is None:
            raise _unknown_tenant(tenant_id)
        async with self._engine.begin() as conn:
            await conn.execute(
                update(TENANTS).where(TENANTS.c.id == tenant_id).values(clickhouse_database=database)
            )
        return msgspec.structs.replace(tenant, clickhouse_database=database)

    async def clickhouse_databases(self) -> dict[str, str]:
        """Unscoped: the tenants on a database of their own, for routing their reads and writes."""
        query = select(TENANTS.c.id, TENANTS.c.clickhouse_database).where(TENANTS.c.clickhouse_database != "")
        async with self._engine.connect() as conn:
            return {row.id: str(row.clickhouse_database) for row in await conn.execute(query)}

    async def retention_by_tenant(self) -> dict[str, int]:
        """Unscoped: only for the rollup worker, which stamps raw events with their retention."""
        async with self._engine.connect() as conn:
            rows = await conn.execute(select(TENANTS.c.id, TENANTS.c.retention_days))
            return {row.id: int(row.retention_days) for row in rows}

    async def create_user(self, email: str, password: str, tenant_id: str, role: Role) -> Membership:
        email = checked_email(email)
        if not MIN_PASSWORD_LENGTH <= len(password) <= MAX_PASSWORD_LENGTH:
            raise ValueError(
                f"password must be {MIN_PASSWORD_LENGTH} to {MAX_PASSWORD_LENGTH} characters long"
            )
        if role not in ROLES:
            raise ValueError(f"role must be one of {', '.join(ROLES)}")
        if not _HEX_ID.fullmatch(tenant_id):
            raise _unknown_tenant(tenant_id)
        password_hash = await asyncio.to_thread(hash_password, password)
        membership = Membership(user_id=uuid.uuid4().hex, email=email, tenant_id=tenant_id, role=role)
        async with self._engine.begin() as conn:
            try:
                await conn.execute(
                    USERS.insert().values(
                        id=membership.user_id, email=email, password_hash=password_hash, created_at=_now_ms()
                    )
                )
            except IntegrityError as exc:
                raise DuplicateEmail(email) from exc
            try:
                await conn.execute(
                    MEMBERSHIPS.insert().values(user_id=membership.user_id, tenant_id=tenant_id, role=role)
                )
            except IntegrityError as exc:
                raise _unknown_tenant(tenant_id) from exc
        return membership

    async def authenticate(self, email: str, password: str) -> Membership | None:
        row = await self._membership_row(email)
        if row is None:
            # Spend the same hashing time as for a real user, so timing does not tell who has an account.
            await asyncio.to_thread(_verify_dummy, password)
            return None
        if not await asyncio.to_thread(verify_password, row.password_hash, password):
            return None
        if needs_rehash(row.password_hash):
            await self._rehash(row.id, row.password_hash, password)
        return _membership(row)

    async def find_user_by_email(self, email: str) -> Membership | None:
        row = await self._membership_row(email)
        return None if row is None else _membership(row)

    async def create_site(
        self,
        tenant_id: str,
        name: str,
        domain: str,
        *,
        allowed_hosts: Sequence[str] = (),
        timezone: str = DEFAULT_TIMEZONE,
        visitor_mode: str = "cookieless",
    ) -> Site:
        name = _site_field("name", _checked_text, name, "site name")
        domain = _site_field("domain", _checked_text, domain, "domain").lower()
        hosts = _site_field("allowed_hosts", _checked_hosts, allowed_hosts)
        timezone = _site_field("timezone", _checked_timezone, timezone)
        mode = _site_field("visitor_mode", _checked_visitor_mode, visitor_mode)
        if not _HEX_ID.fullmatch(tenant_id):
            raise _unknown_tenant(tenant_id)
        site = Site(
            id="".join(secrets.choice(SITE_ID_ALPHABET) for _ in range(SITE_ID_LENGTH)),
            tenant_id=tenant_id,
            name=name,
            domain=domain,
            disabled=False,
            created_at=_now_ms(),
            allowed_hosts=hosts,
            timezone=timezone,
            visitor_mode=mode,
        )
        values = msgspec.structs.asdict(site) | {"disabled": 0, "allowed_hosts": ",".join(hosts)}
        try:
            async with self._engine.begin() as conn:
                await conn.execute(SITES.insert().values(values))
        except IntegrityError as exc:
            raise _unknown_tenant(tenant_id) from exc
        return site

    async def get_site(self, tenant_id: str, site_id: str) -> Site | None:
        if not (_SITE_ID.fullmatch(site_id) and _HEX_ID.fullmatch(tenant_id)):
            return None
        return await self._one_site(
            select(SITES).where(SITES.c.id == site_id, SITES.c.tenant_id == tenant_id)
        )

    async def set_disabled(self, tenant_id: str, site_id: str, disabled: bool) -> Site:
        """A disabled site keeps its data; the collector refuses its events once its cache expires."""
        site = await self._update_site(tenant_id, site_id, disabled=int(disabled))
        return msgspec.structs.replace(site, disabled=disabled)

    async def set_allowed_hosts(self, tenant_id: str, site_id: str, hosts: list[str]) -> Site:
        """Replace the site's allowed hosts; an empty list accepts events from any host."""
        checked = _checked_hosts(hosts)
        site = await self._update_site(tenant_id, site_id, allowed_hosts=",".join(checked))
        return msgspec.structs.replace(site, allowed_hosts=checked)

    async def update_site(
        self,
        tenant_id: str,
        site_id: str,
        *,
        name: str | None = None,
        domain: str | None = None,
        allowed_hosts: Sequence[str] | None = None,
        timezone: str | None = None,
        visitor_mode: str | None = None,
        disabled: bool | None = None,
    ) -> Site:
        """Change the given settings, all checked before any is written; raises InvalidSite naming one."""
        changes: dict[str, object] = {}
        stored: dict[str, object] = {}
        if name is not None:
            changes["name"] = _site_field("name", _checked_text, name, "site name")
        if domain is not None:
            changes["domain"] = _site_field("domain", _checked_text, domain, "domain").lower()
        if timezone is not None:
            changes["timezone"] = _site_field("timezone", _checked_timezone, timezone)
        if visitor_mode is not None:
            changes["visitor_mode"] = _site_field("visitor_mode", _checked_visitor_mode, visitor_mode)
        if allowed_hosts is not None:
            hosts = _site_field("allowed_hosts", _checked_hosts, allowed_hosts)
            changes["allowed_hosts"], stored["allowed_hosts"] = hosts, ",".join(hosts)
        if disabled is not None:
            changes["disabled"], stored["disabled"] = disabled, int(disabled)
        if not changes:
            site = await self.get_site(tenant_id, site_id)
            if site is None:
                raise ValueError(f"unknown site {site_id!r}")
            return site
        site = await self._update_site(tenant_id, site_id, **(changes | stored))
        return msgspec.structs.replace(site, **changes)

    async def _update_site(self, tenant_id: str, site_id: str, **values: object) -> Site:
        """Scoped to the owning tenant: another tenant's site is as unknown as a missing one."""
        site = await self.get_site(tenant_id, site_id)
        if site is None:
            raise ValueError(f"unknown site {site_id!r}")
        async with self._engine.begin() as conn:
            await conn.execute(
                update(SITES).where(SITES.c.id == site_id, SITES.c.tenant_id == tenant_id).values(**values)
            )
        return site

    async def list_sites(self, tenant_id: str) -> list[Site]:
        if not _HEX_ID.fullmatch(tenant_id):
            return []
        query = select(SITES).where(SITES.c.tenant_id == tenant_id).order_by(SITES.c.created_at, SITES.c.id)
        async with self._engine.connect() as conn:
            return [_site(row) for row in await conn.execute(query)]

    async def enabled_sites(self) -> list[Site]:
        """Unscoped: every tenant's, only for work the product does for all of them (pulse.stats.prefold)."""
        query = select(SITES).where(SITES.c.disabled == 0).order_by(SITES.c.created_at, SITES.c.id)
        async with self._engine.connect() as conn:
            return [_site(row) for row in await conn.execute(query)]

    async def find_site(self, site_id: str) -> Site | None:
        """Unscoped: only for the collector, which maps a public site key to its tenant."""
        if not _SITE_ID.fullmatch(site_id):
            return None
        return await self._one_site(select(SITES).where(SITES.c.id == site_id))

    async def _one_site(self, query: Select[*tuple[Any, ...]]) -> Site | None:
        async with self._engine.connect() as conn:
            row = (await conn.execute(query)).first()
        return None if row is None else _site(row)

    async def _membership_row(self, email: str) -> Row[*tuple[Any, ...]] | None:
        try:
            email = checked_email(email)
        except ValueError:
            return None
        async with self._engine.connect() as conn:
            return (await conn.execute(_MEMBERSHIP.where(USERS.c.email == email))).first()

    async def _rehash(self, user_id: str, old_hash: str, password: str) -> None:
        new_hash = await asyncio.to_thread(hash_password, password)
        async with self._engine.begin() as conn:
            # Matching the old hash keeps a password changed meanwhile from being overwritten.
            await conn.execute(
                update(USERS)
                .where(USERS.c.id == user_id, USERS.c.password_hash == old_hash)
                .values(password_hash=new_hash)
            )


def _checked_retention(days: int) -> int:
    if not 1 <= days <= MAX_RETENTION_DAYS:
        raise ValueError(f"retention must be 1 to {MAX_RETENTION_DAYS} days")
    return days


def _checked_text(value: str, field: str) -> str:
    value = value.strip()
    if (reason := line_refusal(value, MAX_NAME_LENGTH)) is not None:
        raise ValueError(f"{field} {reason}")
    return value


def _site_field[**P, T](field: str, check: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
    try:
        return check(*args, **kwargs)
    except ValueError as exc:
        raise InvalidSite(field, str(exc)) from None


def _checked_hosts(hosts: Sequence[str]) -> tuple[str, ...]:
    checked = tuple(dict.fromkeys(_checked_host(h) for h in hosts))
    if len(checked) > MAX_ALLOWED_HOSTS:
        raise ValueError(f"at most {MAX_ALLOWED_HOSTS} allowed hosts per site")
    return checked


@functools.cache
def time_zones() -> tuple[str, ...]:
    """The zones a site may report in, sorted: what a settings form offers."""
    # "localtime" is whatever zone the server happens to run in, not a place.
    return tuple(sorted(zoneinfo.available_timezones() - {"localtime", "Factory"}))


@functools.cache
def _time_zone_set() -> frozenset[str]:
    return frozenset(time_zones())


def _checked_timezone(timezone: str) -> str:
    if timezone not in _time_zone_set():
        raise ValueError(f"{timezone[:64]!r} is not an IANA time zone (like UTC or Europe/Paris)")
    return timezone


def _checked_visitor_mode(mode: str) -> VisitorMode:
    for known in VISITOR_MODES:
        if mode == known:
            return known
    raise ValueError(f"visitor mode must be one of {', '.join(VISITOR_MODES)}, not {mode[:32]!r}")


def _checked_host(host: str) -> str:
    """A hostname, or `*.` and a hostname for every subdomain of it."""
    host = host.strip().lower().rstrip(".")
    bare = host.removeprefix("*.")
    labels = bare.split(".")
    if len(host) > 253 or not all(_HOST_LABEL.fullmatch(label) for label in labels):
        raise ValueError(f"{host!r} is not a hostname (like shop.example or *.shop.example)")
    return host


def checked_email(email: str) -> str:
    email = email.strip().lower()
    local, _, domain = email.partition("@")
    if (
        len(email) > MAX_EMAIL_LENGTH
        or email.count("@") != 1
        or not local
        or not domain
        or any(c.isspace() for c in email)
        or has_control_characters(email)
    ):
        raise ValueError(f"email must be a single address with one @, at most {MAX_EMAIL_LENGTH} characters")
    return email


def _unknown_tenant(tenant_id: str) -> ValueError:
    return ValueError(f"unknown tenant {tenant_id!r}")


def _tenant(row: Row[*tuple[Any, ...]]) -> Tenant:
    return Tenant(
        id=row.id,
        name=row.name,
        created_at=row.created_at,
        retention_days=row.retention_days,
        clickhouse_database=row.clickhouse_database,
    )


def _membership(row: Row[*tuple[Any, ...]]) -> Membership:
    return Membership(user_id=row.id, email=row.email, tenant_id=row.tenant_id, role=row.role)


def _site(row: Row[*tuple[Any, ...]]) -> Site:
    return Site(
        id=row.id,
        tenant_id=row.tenant_id,
        name=row.name,
        domain=row.domain,
        disabled=bool(row.disabled),
        created_at=row.created_at,
        allowed_hosts=tuple(h for h in (row.allowed_hosts or "").split(",") if h),
        timezone=row.timezone,
        visitor_mode=_checked_visitor_mode(row.visitor_mode),
    )


@functools.cache
def _dummy_hash() -> str:
    return hash_password(secrets.token_urlsafe(16))


def _verify_dummy(password: str) -> None:
    verify_password(_dummy_hash(), password)


def _now_ms() -> int:
    return time.time_ns() // 1_000_000
