"""Invitations to a tenant's team: a link shown once, accepted by setting a password.

The link carries 32 random bytes; only their SHA-256 is kept, as for API keys (pulse.oltp.api_keys):
a token that cannot be guessed needs no slow hash. An invitation lasts seven days and is used once.
"""

from __future__ import annotations

import asyncio
import builtins
import re
import secrets
import time
import uuid
from collections.abc import Callable
from typing import Any, Literal

import msgspec
from sqlalchemy import BigInteger, Column, MetaData, Row, Table, Text, delete, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from pulse.oltp.accounts import MEMBERSHIPS, USERS, DuplicateEmail, Membership, checked_email
from pulse.oltp.members import (
    TeamChangeRefused,
    actor_role,
    checked_role,
    lock_team,
    require_owner,
)
from pulse.oltp.passwords import hash_password
from pulse.oltp.text_checks import secret_digest
from pulse.tenancy import Role

INVITATION_TTL_MS = 7 * 24 * 3600 * 1000
TOKEN_BYTES = 32
# Longer than any token this module makes; a longer one is refused before it is hashed.
MAX_TOKEN_LENGTH = 64
MIN_PASSWORD_LENGTH = 10
MAX_PASSWORD_LENGTH = 1024

_HEX_ID = re.compile("[0-9a-f]{32}")

Unusable = Literal["unknown", "expired", "used"]


class Invitation(msgspec.Struct, frozen=True, kw_only=True):
    id: str
    tenant_id: str
    email: str
    role: Role
    invited_by: str
    created_at: int
    expires_at: int
    accepted_at: int | None = None


class InvitationUnusable(Exception):
    """The link cannot be used: unknown (or revoked), expired, or used already."""

    def __init__(self, why: Unusable) -> None:
        super().__init__(f"invitation is {why}")
        self.why = why


_invitations = Table(
    "invitations",
    MetaData(),
    Column("id", Text, primary_key=True),
    Column("tenant_id", Text),
    Column("email", Text),
    Column("role", Text),
    Column("token_hash", Text),
    Column("invited_by", Text),
    Column("created_at", BigInteger),
    Column("expires_at", BigInteger),
    Column("accepted_at", BigInteger),
)
# Every read names its columns: the hash never leaves this module.
_PUBLIC = tuple(column for column in _invitations.c if column.name != "token_hash")


class Invitations:
    def __init__(self, engine: AsyncEngine, clock: Callable[[], float] = time.time) -> None:
        self._engine = engine
        self._clock = clock

    def _now_ms(self) -> int:
        return int(self._clock() * 1000)

    async def create(self, tenant_id: str, actor_id: str, email: str, role: str) -> tuple[Invitation, str]:
        """The invitation and its token, which is not kept. Inviting an email again replaces its
        pending invitation, so a new link also serves one that expired."""
        try:
            email = checked_email(email)
        except ValueError as exc:
            raise TeamChangeRefused(str(exc)) from None
        invitation = Invitation(
            id=uuid.uuid4().hex,
            tenant_id=tenant_id,
            email=email,
            role=checked_role(role),
            invited_by=actor_id,
            created_at=self._now_ms(),
            expires_at=self._now_ms() + INVITATION_TTL_MS,
        )
        token = secrets.token_urlsafe(TOKEN_BYTES)
        async with self._engine.begin() as conn:
            await lock_team(conn, tenant_id)
            actor = await actor_role(conn, tenant_id, actor_id)
            if invitation.role == "owner":
                require_owner(actor, "invite an owner")
            teams = (
                await conn.execute(
                    select(MEMBERSHIPS.c.tenant_id)
                    .select_from(USERS.join(MEMBERSHIPS, MEMBERSHIPS.c.user_id == USERS.c.id))
                    .where(USERS.c.email == email)
                )
            ).scalars()
            if tenant_id in set(teams):
                raise TeamChangeRefused(f"{email} is already a member of this team")
            if await _has_account(conn, email):
                raise TeamChangeRefused(
                    f"{email} already has a Pulse account with another team; a user belongs to one team for now"
                )
            await conn.execute(
                delete(_invitations).where(
                    _invitations.c.tenant_id == tenant_id,
                    _invitations.c.email == email,
                    _invitations.c.accepted_at.is_(None),
                )
            )
            await conn.execute(
                _invitations.insert().values(
                    msgspec.structs.asdict(invitation) | {"token_hash": secret_digest(token)}
                )
            )
        return invitation, token

    async def pending(self, tenant_id: str) -> builtins.list[Invitation]:
        """Invitations not accepted yet, expired ones included, newest first."""
        if not _HEX_ID.fullmatch(tenant_id):
            return []
        query = (
            select(*_PUBLIC)
            .where(_invitations.c.tenant_id == tenant_id, _invitations.c.accepted_at.is_(None))
            .order_by(_invitations.c.created_at.desc(), _invitations.c.id)
        )
        async with self._engine.connect() as conn:
            return [_invitation(row) for row in await conn.execute(query)]

    async def revoke(self, tenant_id: str, actor_id: str, invitation_id: str) -> Invitation | None:
        """The pending invitation, deleted; None when the tenant has no such pending invitation."""
        if not _HEX_ID.fullmatch(invitation_id):
            return None
        scoped = (
            _invitations.c.id == invitation_id,
            _invitations.c.tenant_id == tenant_id,
            _invitations.c.accepted_at.is_(None),
        )
        async with self._engine.begin() as conn:
            await lock_team(conn, tenant_id)
            actor = await actor_role(conn, tenant_id, actor_id)
            row = (await conn.execute(select(*_PUBLIC).where(*scoped))).first()
            if row is None:
                return None
            invitation = _invitation(row)
            if invitation.role == "owner":
                require_owner(actor, "revoke an invitation to be an owner")
            await conn.execute(delete(_invitations).where(*scoped))
        return invitation

    async def usable(self, token: str) -> Invitation:
        """The invitation the link names, if it can still be accepted; else InvitationUnusable."""
        invitation = await self._find(token)
        if invitation is None:
            raise InvitationUnusable("unknown")
        if invitation.accepted_at is not None:
            raise InvitationUnusable("used")
        if invitation.expires_at <= self._now_ms():
            raise InvitationUnusable("expired")
        return invitation

    async def accept(self, token: str, password: str) -> Membership:
        """Makes the invitee's account with this password and role; the link is used up.

        Raises ValueError for a password out of bounds, InvitationUnusable, or DuplicateEmail when
        the email got an account since the invitation was made.
        """
        if not MIN_PASSWORD_LENGTH <= len(password) <= MAX_PASSWORD_LENGTH:
            raise ValueError(
                f"the password must be {MIN_PASSWORD_LENGTH} to {MAX_PASSWORD_LENGTH} characters long"
            )
        invitation = await self.usable(token)
        password_hash = await asyncio.to_thread(hash_password, password)
        member = Membership(
            user_id=uuid.uuid4().hex,
            email=invitation.email,
            tenant_id=invitation.tenant_id,
            role=invitation.role,
        )
        now = self._now_ms()
        async with self._engine.begin() as conn:
            # Used up first, and only while still open: of two acceptances at once, one wins.
            claimed = await conn.execute(
                update(_invitations)
                .where(
                    _invitations.c.id == invitation.id,
                    _invitations.c.accepted_at.is_(None),
                    _invitations.c.expires_at > now,
                )
                .values(accepted_at=now)
            )
            if claimed.rowcount == 0:
                raise InvitationUnusable("used")
            try:
                await conn.execute(
                    USERS.insert().values(
                        id=member.user_id, email=member.email, password_hash=password_hash, created_at=now
                    )
                )
            except IntegrityError as exc:
                raise DuplicateEmail(member.email) from exc
            await conn.execute(
                MEMBERSHIPS.insert().values(
                    user_id=member.user_id, tenant_id=member.tenant_id, role=member.role
                )
            )
        return member

    async def _find(self, token: str) -> Invitation | None:
        if not 0 < len(token) <= MAX_TOKEN_LENGTH:
            return None
        query = select(*_PUBLIC).where(_invitations.c.token_hash == secret_digest(token))
        async with self._engine.connect() as conn:
            row = (await conn.execute(query)).first()
        return None if row is None else _invitation(row)


async def _has_account(conn: AsyncConnection, email: str) -> bool:
    return (await conn.execute(select(USERS.c.id).where(USERS.c.email == email))).first() is not None


def _invitation(row: Row[*tuple[Any, ...]]) -> Invitation:
    return Invitation(
        id=row.id,
        tenant_id=row.tenant_id,
        email=row.email,
        role=checked_role(row.role),
        invited_by=row.invited_by,
        created_at=row.created_at,
        expires_at=row.expires_at,
        accepted_at=row.accepted_at,
    )
