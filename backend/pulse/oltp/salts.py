"""The daily visitor salts: random, shared by every collector, destroyed when their day ends."""

from __future__ import annotations

import base64
import secrets
import time

from sqlalchemy import BigInteger, Column, MetaData, Table, Text, delete, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine

SALT_BYTES = 32

_salts = Table(
    "visitor_salts",
    MetaData(),
    Column("day", Text, primary_key=True),
    Column("salt", Text),
    Column("created_at", BigInteger),
)


class SaltStore:
    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine

    async def salt_for(self, day: str) -> bytes:
        """The salt of `day` (YYYY-MM-DD, UTC), created by whichever replica asks first.

        Salts of earlier days are deleted in the same step: once a replica has moved to a new
        day, nothing can compute an earlier day's visitor ids again.
        """
        async with self._engine.begin() as conn:
            await conn.execute(delete(_salts).where(_salts.c.day < day))
        stored = await self._read(day)
        if stored is not None:
            return stored
        candidate = secrets.token_bytes(SALT_BYTES)
        try:
            async with self._engine.begin() as conn:
                await conn.execute(
                    _salts.insert().values(
                        day=day,
                        salt=base64.b64encode(candidate).decode(),
                        created_at=time.time_ns() // 1_000_000,
                    )
                )
        except IntegrityError:
            # Another replica created it first; everyone must use the same one.
            pass
        stored = await self._read(day)
        if stored is None:
            raise RuntimeError(f"the visitor salt for {day} vanished while it was being created")
        return stored

    async def days(self) -> list[str]:
        async with self._engine.connect() as conn:
            return [row.day for row in await conn.execute(select(_salts.c.day).order_by(_salts.c.day))]

    async def _read(self, day: str) -> bytes | None:
        async with self._engine.connect() as conn:
            row = (await conn.execute(select(_salts.c.salt).where(_salts.c.day == day))).first()
        return None if row is None else base64.b64decode(row.salt)
