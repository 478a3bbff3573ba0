"""The team stores on SQLite and PostgreSQL: the owner rules under concurrency, links used once."""

from __future__ import annotations

import asyncio

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from pulse.oltp.accounts import Accounts, Membership
from pulse.oltp.invitations import Invitations, InvitationUnusable
from pulse.oltp.members import LastOwner, Members, NotPermitted, UnknownMember

PASSWORD = "correct horse battery"
PASSWORDS = ("a long enough password", "another long password")


async def _owners(accounts: Accounts, count: int) -> list[Membership]:
    tenant = await accounts.create_tenant("Owners")
    return [
        await accounts.create_user(f"owner{i}@example.com", PASSWORD, tenant.id, "owner")
        for i in range(count)
    ]


async def test_two_owners_demoting_each_other_at_once_leave_one_owner(
    accounts: Accounts, oltp_engine: AsyncEngine
) -> None:
    members = Members(oltp_engine)
    one, two = await _owners(accounts, 2)
    results = await asyncio.gather(
        members.change_role(one.tenant_id, one.user_id, two.user_id, "admin"),
        members.change_role(two.tenant_id, two.user_id, one.user_id, "admin"),
        return_exceptions=True,
    )
    # The second change runs after the first: its actor is no owner any more.
    assert sorted(type(r).__name__ for r in results) == ["Member", "NotPermitted"]
    roles = sorted(m.role for m in await members.list(one.tenant_id))
    assert roles == ["admin", "owner"]


async def test_two_owners_removing_themselves_at_once_leave_one_owner(
    accounts: Accounts, oltp_engine: AsyncEngine
) -> None:
    members = Members(oltp_engine)
    one, two = await _owners(accounts, 2)
    results = await asyncio.gather(
        members.remove(one.tenant_id, one.user_id, one.user_id),
        members.remove(two.tenant_id, two.user_id, two.user_id),
        return_exceptions=True,
    )
    assert sorted(type(r).__name__ for r in results) == ["LastOwner", "Member"]
    assert [m.role for m in await members.list(one.tenant_id)] == ["owner"]


async def test_rules_read_the_stored_role_and_the_tenant(
    accounts: Accounts, oltp_engine: AsyncEngine
) -> None:
    members = Members(oltp_engine)
    (owner,) = await _owners(accounts, 1)
    admin = await accounts.create_user("admin@example.com", PASSWORD, owner.tenant_id, "admin")
    with pytest.raises(NotPermitted, match="only an owner can remove an owner; your role is admin"):
        await members.remove(owner.tenant_id, admin.user_id, owner.user_id)
    with pytest.raises(LastOwner):
        await members.change_role(owner.tenant_id, owner.user_id, owner.user_id, "viewer")
    other = await accounts.create_tenant("Other")
    other_owner = await accounts.create_user("other@example.com", PASSWORD, other.id, "owner")
    with pytest.raises(UnknownMember):
        await members.remove(other.id, other_owner.user_id, admin.user_id)
    with pytest.raises(UnknownMember):
        await members.change_role(owner.tenant_id, owner.user_id, "not-an-id", "viewer")
    assert await members.role_of(owner.tenant_id, admin.user_id) == "admin"
    removed = await members.remove(owner.tenant_id, owner.user_id, admin.user_id)
    assert removed.email == "admin@example.com"
    assert await members.role_of(owner.tenant_id, admin.user_id) is None
    # A user without a team has no account left to sign in with.
    assert await accounts.find_user_by_email("admin@example.com") is None


async def test_a_link_is_used_once_even_when_accepted_twice_at_once(
    accounts: Accounts, oltp_engine: AsyncEngine
) -> None:
    invitations = Invitations(oltp_engine)
    (owner,) = await _owners(accounts, 1)
    invitation, token = await invitations.create(owner.tenant_id, owner.user_id, "New@Example.com", "viewer")
    assert invitation.email == "new@example.com"
    results = await asyncio.gather(*(invitations.accept(token, p) for p in PASSWORDS), return_exceptions=True)
    assert sorted(type(r).__name__ for r in results) == ["InvitationUnusable", "Membership"]
    with pytest.raises(InvitationUnusable, match="used"):
        await invitations.usable(token)
    (member,) = [r for r in results if isinstance(r, Membership)]
    signed_in = [await accounts.authenticate("new@example.com", p) for p in PASSWORDS]
    assert signed_in.count(member) == 1
    async with oltp_engine.connect() as conn:
        stored = (await conn.execute(text("SELECT token_hash FROM invitations"))).scalars().all()
    assert token not in stored
    assert await invitations.pending(owner.tenant_id) == []
