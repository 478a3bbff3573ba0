"""The JWT signing keys every process shares, rotated without logging anybody out.

The OLTP store holds only key ids (kid) and their validity; each key's material is derived from
PULSE_SECRET_KEY and its kid, so a copy of the database signs nothing, and a token's signature can
be checked before the store is asked about its kid: a forged token never costs a query.

The newest key without a retire time signs. Rotating gives the keys before it a retire time far
enough ahead that every token they signed has expired by then, so those tokens keep working.
Whichever process next issues a token after `jwt_key_rotation_s` rotates; each process reads the
ring at most every `auth_cache_s`, and again at once when it meets a kid it does not know yet.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import re
import secrets
import time
from collections.abc import Callable
from typing import Any

import msgspec
from sqlalchemy import BigInteger, Column, MetaData, Row, Table, Text, select, update
from sqlalchemy.ext.asyncio import AsyncEngine

from pulse.settings import Settings

KID_BYTES = 8
_KID = re.compile(f"[0-9a-f]{{{KID_BYTES * 2}}}")
# Clocks of replicas may disagree by this much; see TokenService.
CLOCK_LEEWAY_S = 5


class SigningKey(msgspec.Struct, frozen=True, kw_only=True):
    kid: str
    # Epoch milliseconds.
    created_at: int
    retire_at: int | None = None

    def verifies_at(self, now_ms: int) -> bool:
        return self.retire_at is None or now_ms < self.retire_at


_keys = Table(
    "signing_keys",
    MetaData(),
    Column("kid", Text, primary_key=True),
    Column("created_at", BigInteger),
    Column("retire_at", BigInteger),
)


def key_material(secret_key: str, kid: str) -> bytes:
    return hmac.new(secret_key.encode(), f"jwt:{kid}".encode(), hashlib.sha256).digest()


class Keyring:
    def __init__(
        self, engine: AsyncEngine, settings: Settings, clock: Callable[[], float] = time.time
    ) -> None:
        self._engine = engine
        self._secret_key = settings.secret_key
        self._rotation_ms = settings.jwt_key_rotation_s * 1000
        self._cache_s = settings.auth_cache_s
        # Tokens signed by a key up to the moment it is replaced expire within the longest lifetime.
        # A process whose cached ring is stale still signs with it for up to auth_cache_s more, and
        # a verifier's clock may run behind by the leeway.
        longest_s = max(settings.jwt_ttl_s, settings.api_token_ttl_s)
        self._retire_after_ms = int((longest_s + settings.auth_cache_s + CLOCK_LEEWAY_S) * 1000)
        self._clock = clock
        self._loaded_at = float("-inf")
        self._ring: dict[str, SigningKey] = {}
        self._lock = asyncio.Lock()

    def _now_ms(self) -> int:
        return int(self._clock() * 1000)

    def material(self, kid: str) -> bytes:
        return key_material(self._secret_key, kid)

    async def signing_key(self) -> SigningKey:
        """The key to sign with now, made or rotated first when there is none or it is too old."""
        current = _newest_unretired(await self._cached())
        if current is None or self._now_ms() - current.created_at >= self._rotation_ms:
            await self._rotate(replacing=current)
            current = _newest_unretired(await self._load())
            if current is None:
                raise RuntimeError("no signing key is left unretired after a rotation")
        return current

    async def find(self, kid: str) -> SigningKey | None:
        """The key named `kid`, retired or not; None when the ring has no such key.

        A kid this process has not seen may have been made by another process a moment ago, so
        the ring is read again before answering None. Ask only about a kid whose signature
        verified, so only genuine tokens can cause that read.
        """
        if not _KID.fullmatch(kid):
            return None
        key = (await self._cached()).get(kid)
        return key if key is not None else (await self._load()).get(kid)

    async def rotate(self) -> tuple[SigningKey, list[SigningKey]]:
        """A new signing key now (`pulse signing-key rotate`); returns it and the whole ring."""
        await self._rotate(replacing=None)
        ring = await self._load()
        current = _newest_unretired(ring)
        if current is None:
            raise RuntimeError("no signing key is left unretired after a rotation")
        return current, sorted(ring.values(), key=lambda k: (k.created_at, k.kid))

    async def _cached(self) -> dict[str, SigningKey]:
        now = self._clock()
        if self._loaded_at <= now < self._loaded_at + self._cache_s:
            return self._ring
        async with self._lock:
            # Requests that waited on the lock find the ring another one just read.
            if self._loaded_at <= self._clock() < self._loaded_at + self._cache_s:
                return self._ring
            return await self._load()

    async def _load(self) -> dict[str, SigningKey]:
        async with self._engine.connect() as conn:
            rows = await conn.execute(select(_keys))
            self._ring = {row.kid: _signing_key(row) for row in rows}
        self._loaded_at = self._clock()
        return self._ring

    async def _rotate(self, replacing: SigningKey | None) -> None:
        """Adds a key and retires every other unretired one, unless `replacing` was already replaced.

        Processes that find the same key too old at once race here: the first retires it, the
        others find it retired and add nothing, so one rotation makes one new key.
        """
        now = self._now_ms()
        retire = (
            update(_keys).where(_keys.c.retire_at.is_(None)).values(retire_at=now + self._retire_after_ms)
        )
        async with self._engine.begin() as conn:
            if replacing is not None:
                claimed = await conn.execute(retire.where(_keys.c.kid == replacing.kid))
                if claimed.rowcount == 0:
                    return
            # Keys added at once by processes that each found the ring empty are all retired here.
            await conn.execute(retire)
            await conn.execute(_keys.insert().values(kid=secrets.token_hex(KID_BYTES), created_at=now))


def _newest_unretired(ring: dict[str, SigningKey]) -> SigningKey | None:
    unretired = [key for key in ring.values() if key.retire_at is None]
    return max(unretired, key=lambda k: (k.created_at, k.kid), default=None)


def _signing_key(row: Row[*tuple[Any, ...]]) -> SigningKey:
    return SigningKey(kid=row.kid, created_at=row.created_at, retire_at=row.retire_at)
