"""API keys: made for a tenant with some permissions, shown once, kept only as a hash, revocable.

A key reads `pulse_<id>_<secret>`. The id finds the row; the secret is compared, in constant time,
with the SHA-256 kept there. The secret is 32 random bytes, so a plain hash is enough: a slow KDF
guards low-entropy passwords against guessing, and 256 random bits cannot be guessed either way.
"""

from __future__ import annotations

import base64
import builtins
import hmac
import re
import secrets
import time
import uuid
from collections.abc import Callable, Iterable
from typing import Any, cast

import msgspec
from sqlalchemy import BigInteger, Column, MetaData, Row, Table, Text, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine

from pulse.auth.ttl_cache import TtlCache
from pulse.oltp.text_checks import line_refusal, secret_digest
from pulse.tenancy import KEY_PERMISSIONS, PERMISSIONS, Permission

KEY_PREFIX = "pulse"
SECRET_BYTES = 32
MAX_NAME_LENGTH = 100
# Longer than any key this module makes; anything longer is refused before it is parsed.
MAX_KEY_LENGTH = 128
# created_by of a key made with `pulse api-key create` rather than by a signed-in user.
OPERATOR = "operator"
# last_used_at is written at most this often per key, so a busy key does not write on every request.
TOUCH_INTERVAL_S = 60.0

_HEX_ID = re.compile("[0-9a-f]{32}")


class ApiKey(msgspec.Struct, frozen=True, kw_only=True):
    id: str
    tenant_id: str
    name: str
    # In the order of pulse.tenancy.KEY_PERMISSIONS.
    permissions: tuple[Permission, ...]
    created_at: int
    created_by: str
    last_used_at: int | None = None
    revoked_at: int | None = None


_keys = Table(
    "api_keys",
    MetaData(),
    Column("id", Text, primary_key=True),
    Column("tenant_id", Text),
    Column("name", Text),
    Column("permissions", Text),
    Column("secret_hash", Text),
    Column("created_at", BigInteger),
    Column("created_by", Text),
    Column("last_used_at", BigInteger),
    Column("revoked_at", BigInteger),
)
# Every read names its columns: the hash never leaves this module.
_PUBLIC = tuple(column for column in _keys.c if column.name != "secret_hash")


class ApiKeys:
    def __init__(self, engine: AsyncEngine, clock: Callable[[], float] = time.time) -> None:
        self._engine = engine
        self._clock = clock
        self._touched: TtlCache[str, None] = TtlCache(TOUCH_INTERVAL_S, clock)

    def _now_ms(self) -> int:
        return int(self._clock() * 1000)

    async def create(
        self, tenant_id: str, name: str, permissions: Iterable[str], created_by: str
    ) -> tuple[ApiKey, str]:
        """The new key and its full text, which is not kept and cannot be shown again."""
        key = ApiKey(
            id=uuid.uuid4().hex,
            tenant_id=tenant_id,
            name=checked_name(name),
            permissions=checked_permissions(permissions),
            created_at=self._now_ms(),
            created_by=created_by,
        )
        if not _HEX_ID.fullmatch(tenant_id):
            raise _unknown_tenant(tenant_id)
        secret = base64.urlsafe_b64encode(secrets.token_bytes(SECRET_BYTES)).rstrip(b"=").decode()
        values = msgspec.structs.asdict(key) | {
            "permissions": ",".join(key.permissions),
            "secret_hash": secret_digest(secret),
        }
        try:
            async with self._engine.begin() as conn:
                await conn.execute(_keys.insert().values(values))
        except IntegrityError as exc:
            raise _unknown_tenant(tenant_id) from exc
        return key, f"{KEY_PREFIX}_{key.id}_{secret}"

    async def list(self, tenant_id: str) -> builtins.list[ApiKey]:
        """The tenant's keys, revoked ones included, oldest first."""
        if not _HEX_ID.fullmatch(tenant_id):
            return []
        query = (
            select(*_PUBLIC).where(_keys.c.tenant_id == tenant_id).order_by(_keys.c.created_at, _keys.c.id)
        )
        async with self._engine.connect() as conn:
            return [_api_key(row) for row in await conn.execute(query)]

    async def revoke(self, tenant_id: str, key_id: str) -> ApiKey | None:
        """The key, revoked (at once for new exchanges); None when the tenant has no such key.

        Revoking again keeps the first revocation time.
        """
        if not (_HEX_ID.fullmatch(key_id) and _HEX_ID.fullmatch(tenant_id)):
            return None
        async with self._engine.begin() as conn:
            await conn.execute(
                update(_keys)
                .where(_keys.c.id == key_id, _keys.c.tenant_id == tenant_id, _keys.c.revoked_at.is_(None))
                .values(revoked_at=self._now_ms())
            )
            row = (
                await conn.execute(
                    select(*_PUBLIC).where(_keys.c.id == key_id, _keys.c.tenant_id == tenant_id)
                )
            ).first()
        return None if row is None else _api_key(row)

    async def find(self, key_id: str) -> ApiKey | None:
        """Unscoped: only for token verification, which checks the key's tenant against the token's."""
        if not _HEX_ID.fullmatch(key_id):
            return None
        async with self._engine.connect() as conn:
            row = (await conn.execute(select(*_PUBLIC).where(_keys.c.id == key_id))).first()
        return None if row is None else _api_key(row)

    async def authenticate(self, presented: str) -> ApiKey | None:
        """The key whose full text this is, unless unknown, wrong or revoked."""
        parts = presented.split("_", 2) if len(presented) <= MAX_KEY_LENGTH else []
        if len(parts) != 3 or parts[0] != KEY_PREFIX or not _HEX_ID.fullmatch(parts[1]):
            return None
        async with self._engine.connect() as conn:
            row = (
                await conn.execute(select(*_PUBLIC, _keys.c.secret_hash).where(_keys.c.id == parts[1]))
            ).first()
        if row is None or not hmac.compare_digest(secret_digest(parts[2]), row.secret_hash):
            return None
        key = _api_key(row)
        if key.revoked_at is not None:
            return None
        await self.touch(key.id)
        return key

    async def touch(self, key_id: str) -> None:
        """Record that the key was used now, unless that was recorded less than a minute ago."""
        await self._touched.get(key_id, lambda: self._write_last_used(key_id))

    async def _write_last_used(self, key_id: str) -> None:
        now = self._now_ms()
        async with self._engine.begin() as conn:
            # The condition keeps replicas, each with its own throttle, from writing in turn.
            await conn.execute(
                update(_keys)
                .where(
                    _keys.c.id == key_id,
                    or_(
                        _keys.c.last_used_at.is_(None), _keys.c.last_used_at <= now - TOUCH_INTERVAL_S * 1000
                    ),
                )
                .values(last_used_at=now)
            )


def checked_name(name: str) -> str:
    name = name.strip()
    if (reason := line_refusal(name, MAX_NAME_LENGTH)) is not None:
        raise ValueError(f"name {reason}")
    return name


def checked_permissions(permissions: Iterable[str]) -> tuple[Permission, ...]:
    asked: set[str] = set()
    for permission in permissions:
        if permission in PERMISSIONS and permission not in KEY_PERMISSIONS:
            raise ValueError(f"an API key cannot hold {permission}: only signed-in users can")
        if permission not in KEY_PERMISSIONS:
            raise ValueError(
                f"unknown permission {permission!r}: expected some of {', '.join(KEY_PERMISSIONS)}"
            )
        asked.add(permission)
    if not asked:
        raise ValueError(f"permissions must name at least one of {', '.join(KEY_PERMISSIONS)}")
    return tuple(p for p in KEY_PERMISSIONS if p in asked)


def _unknown_tenant(tenant_id: str) -> ValueError:
    return ValueError(f"unknown tenant {tenant_id!r}")


def _api_key(row: Row[*tuple[Any, ...]]) -> ApiKey:
    return ApiKey(
        id=row.id,
        tenant_id=row.tenant_id,
        name=row.name,
        permissions=cast(tuple[Permission, ...], tuple(p for p in row.permissions.split(",") if p)),
        created_at=row.created_at,
        created_by=row.created_by,
        last_used_at=row.last_used_at,
        revoked_at=row.revoked_at,
    )
