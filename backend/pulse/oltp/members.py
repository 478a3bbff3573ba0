"""A tenant's team: who is a member, with which role, and the rules for changing that.

Only an owner grants or takes away the owner role, and a team always keeps at least one owner.
The rules read the acting user's role from the database, not from their token, which may predate
a demotion. Every change first locks the tenant's row (a no-op update), so changes to one team run
one after the other on SQLite and PostgreSQL alike: two owners demoting each other at the same
moment cannot leave the team without one. Locking with a write also keeps SQLite's rule that a
write transaction starts with its write (pulse.oltp.db).
"""

from __future__ import annotations

import re
from typing import Any, get_args

import msgspec
from sqlalchemy import Row, delete, exists, func, select, update
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from pulse.oltp.accounts import MEMBERSHIPS, TENANTS, USERS
from pulse.tenancy import Role

ROLES: tuple[Role, ...] = get_args(Role)

_HEX_ID = re.compile("[0-9a-f]{32}")


class Member(msgspec.Struct, frozen=True, kw_only=True):
    user_id: str
    email: str
    role: Role
    # When the user's account was made (epoch ms): they joined with it, as a user has one team today.
    joined_at: int


class UnknownMember(LookupError):
    """No such member in this tenant; another tenant's user is as unknown as a missing one."""


class TeamChangeRefused(Exception):
    """A rule of the team refuses the change; the message says which and is safe to show."""


class NotPermitted(TeamChangeRefused):
    """The acting user's role, as stored now, does not allow this (an owner-only change)."""


class LastOwner(TeamChangeRefused):
    """The change would leave the team without an owner."""


class Members:
    """Every statement is scoped by tenant id."""

    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine

    async def list(self, tenant_id: str) -> list[Member]:
        """Owners first, then admins, then viewers; each oldest first."""
        if not _HEX_ID.fullmatch(tenant_id):
            return []
        async with self._engine.connect() as conn:
            rows = await conn.execute(_MEMBERS.where(MEMBERSHIPS.c.tenant_id == tenant_id))
            members = [_member(row) for row in rows]
        return sorted(members, key=lambda m: (ROLES.index(m.role), m.joined_at, m.email))

    async def role_of(self, tenant_id: str, user_id: str) -> Role | None:
        """The user's role in the tenant today; None when they are not (or no longer) a member."""
        if not (_HEX_ID.fullmatch(tenant_id) and _HEX_ID.fullmatch(user_id)):
            return None
        query = select(MEMBERSHIPS.c.role).where(
            MEMBERSHIPS.c.tenant_id == tenant_id, MEMBERSHIPS.c.user_id == user_id
        )
        async with self._engine.connect() as conn:
            role = (await conn.execute(query)).scalar_one_or_none()
        return checked_role(role) if role is not None else None

    async def change_role(self, tenant_id: str, actor_id: str, user_id: str, role: str) -> Member:
        new_role = checked_role(role)
        async with self._engine.begin() as conn:
            await lock_team(conn, tenant_id)
            actor = await actor_role(conn, tenant_id, actor_id)
            member = await _member_in(conn, tenant_id, user_id)
            if "owner" in (member.role, new_role) and member.role != new_role:
                require_owner(actor, "grant or take away the owner role")
            if member.role == "owner" and new_role != "owner" and await _owners(conn, tenant_id) <= 1:
                raise LastOwner(f"{member.email} is the team's last owner: make someone else an owner first")
            await conn.execute(
                update(MEMBERSHIPS)
                .where(MEMBERSHIPS.c.tenant_id == tenant_id, MEMBERSHIPS.c.user_id == user_id)
                .values(role=new_role)
            )
        return msgspec.structs.replace(member, role=new_role)

    async def remove(self, tenant_id: str, actor_id: str, user_id: str) -> Member:
        """The member, removed; their account goes too when it belongs to no other team."""
        async with self._engine.begin() as conn:
            await lock_team(conn, tenant_id)
            actor = await actor_role(conn, tenant_id, actor_id)
            member = await _member_in(conn, tenant_id, user_id)
            if member.role == "owner":
                require_owner(actor, "remove an owner")
                if await _owners(conn, tenant_id) <= 1:
                    raise LastOwner(f"{member.email} is the team's last owner and cannot be removed")
            await conn.execute(
                delete(MEMBERSHIPS).where(
                    MEMBERSHIPS.c.tenant_id == tenant_id, MEMBERSHIPS.c.user_id == user_id
                )
            )
            # Users have one team today: a user without one could never sign in, yet would keep
            # the email from being invited again.
            await conn.execute(
                delete(USERS).where(USERS.c.id == user_id, ~exists().where(MEMBERSHIPS.c.user_id == user_id))
            )
        return member


async def lock_team(conn: AsyncConnection, tenant_id: str) -> None:
    """Holds the tenant's row until the transaction ends; the first statement of every team change."""
    if not _HEX_ID.fullmatch(tenant_id):
        raise UnknownMember(f"unknown tenant {tenant_id!r}")
    result = await conn.execute(update(TENANTS).where(TENANTS.c.id == tenant_id).values(name=TENANTS.c.name))
    if result.rowcount == 0:
        raise UnknownMember(f"unknown tenant {tenant_id!r}")


def checked_role(role: str) -> Role:
    for known in ROLES:
        if role == known:
            return known
    raise TeamChangeRefused(f"role must be one of {', '.join(ROLES)}")


async def actor_role(conn: AsyncConnection, tenant_id: str, actor_id: str) -> Role:
    """The acting user's role as stored now; called after lock_team, so it cannot change meanwhile."""
    role = (
        await conn.execute(
            select(MEMBERSHIPS.c.role).where(
                MEMBERSHIPS.c.tenant_id == tenant_id, MEMBERSHIPS.c.user_id == actor_id
            )
        )
    ).scalar_one_or_none()
    if role is None:
        raise NotPermitted("only members of this team can change it")
    return checked_role(role)


def require_owner(role: Role, action: str) -> None:
    if role != "owner":
        raise NotPermitted(f"only an owner can {action}; your role is {role}")


async def _member_in(conn: AsyncConnection, tenant_id: str, user_id: str) -> Member:
    if not _HEX_ID.fullmatch(user_id):
        raise UnknownMember(f"no member {user_id[:64]!r} in this team")
    row = (
        await conn.execute(
            _MEMBERS.where(MEMBERSHIPS.c.tenant_id == tenant_id, MEMBERSHIPS.c.user_id == user_id)
        )
    ).first()
    if row is None:
        raise UnknownMember(f"no member {user_id!r} in this team")
    return _member(row)


async def _owners(conn: AsyncConnection, tenant_id: str) -> int:
    query = (
        select(func.count())
        .select_from(MEMBERSHIPS)
        .where(MEMBERSHIPS.c.tenant_id == tenant_id, MEMBERSHIPS.c.role == "owner")
    )
    return int((await conn.execute(query)).scalar_one())


_MEMBERS = select(USERS.c.id, USERS.c.email, USERS.c.created_at, MEMBERSHIPS.c.role).select_from(
    USERS.join(MEMBERSHIPS, MEMBERSHIPS.c.user_id == USERS.c.id)
)


def _member(row: Row[*tuple[Any, ...]]) -> Member:
    return Member(user_id=row.id, email=row.email, role=checked_role(row.role), joined_at=row.created_at)
