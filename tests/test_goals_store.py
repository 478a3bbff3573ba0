"""The goals store on SQLite and PostgreSQL: validation, uniqueness and tenant scoping."""

from __future__ import annotations

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from pulse.oltp.accounts import Accounts, Site
from pulse.oltp.goals import (
    MAX_GOALS_PER_SITE,
    DuplicateGoalName,
    Goals,
    InvalidGoal,
    UnknownSite,
)


async def _site(accounts: Accounts, name: str = "Acme") -> Site:
    tenant = await accounts.create_tenant(name)
    return await accounts.create_site(tenant.id, f"{name} site", f"{name.lower()}.example")


async def test_create_list_get_update_delete(accounts: Accounts, oltp_engine: AsyncEngine) -> None:
    goals = Goals(oltp_engine)
    site = await _site(accounts)
    signup = await goals.create(site.tenant_id, site.id, " Signup ", "event", "signup")
    blog = await goals.create(site.tenant_id, site.id, "Read the blog", "page", "/blog/*")
    assert signup.name == "Signup"
    assert [g.id for g in await goals.list(site.tenant_id, site.id)] == [signup.id, blog.id]
    assert await goals.get(site.tenant_id, blog.id) == blog

    renamed = await goals.update(site.tenant_id, blog.id, name="Blog", pattern="/blog/**")
    assert renamed is not None
    assert (renamed.name, renamed.pattern, renamed.kind) == ("Blog", "/blog/**", "page")
    assert await goals.get(site.tenant_id, blog.id) == renamed

    assert await goals.delete(site.tenant_id, blog.id) is True
    assert await goals.delete(site.tenant_id, blog.id) is False
    assert await goals.get(site.tenant_id, blog.id) is None
    assert await goals.list(site.tenant_id, site.id) == [signup]


async def test_another_tenants_site_and_goal_are_unknown(
    accounts: Accounts, oltp_engine: AsyncEngine
) -> None:
    goals = Goals(oltp_engine)
    mine, theirs = await _site(accounts, "Mine"), await _site(accounts, "Theirs")
    their_goal = await goals.create(theirs.tenant_id, theirs.id, "Signup", "event", "signup")

    with pytest.raises(UnknownSite):
        await goals.create(mine.tenant_id, theirs.id, "Steal", "event", "signup")
    with pytest.raises(UnknownSite):
        await goals.create(mine.tenant_id, "nosuchsite22", "Nothing", "event", "signup")
    assert await goals.list(mine.tenant_id, theirs.id) == []
    assert await goals.get(mine.tenant_id, their_goal.id) is None
    assert await goals.update(mine.tenant_id, their_goal.id, name="Mine now") is None
    assert await goals.delete(mine.tenant_id, their_goal.id) is False
    assert await goals.get(theirs.tenant_id, their_goal.id) == their_goal
    assert await goals.list(theirs.tenant_id, theirs.id) == [their_goal]


async def test_duplicate_name_per_site(accounts: Accounts, oltp_engine: AsyncEngine) -> None:
    goals = Goals(oltp_engine)
    site, other = await _site(accounts, "One"), await _site(accounts, "Two")
    await goals.create(site.tenant_id, site.id, "Signup", "event", "signup")
    with pytest.raises(DuplicateGoalName) as caught:
        await goals.create(site.tenant_id, site.id, "Signup", "page", "/signup")
    assert caught.value.field == "name"
    assert "Signup" in str(caught.value)
    # The same name on another site is another goal.
    await goals.create(other.tenant_id, other.id, "Signup", "event", "signup")

    second = await goals.create(site.tenant_id, site.id, "Pricing", "page", "/pricing")
    with pytest.raises(DuplicateGoalName):
        await goals.update(site.tenant_id, second.id, name="Signup")


@pytest.mark.parametrize(
    ("name", "kind", "pattern", "field"),
    [
        ("", "event", "signup", "name"),
        ("   ", "event", "signup", "name"),
        ("x" * 121, "event", "signup", "name"),
        ("bad\x00name", "event", "signup", "name"),
        ("tab\tname", "event", "signup", "name"),
        ("Signup", "pageview", "signup", "kind"),
        ("Signup", "page", "blog/*", "pattern"),
        ("Signup", "page", "/" + "a" * 2048, "pattern"),
        ("Signup", "page", "/with space", "pattern"),
        ("Signup", "event", "", "pattern"),
        ("Signup", "event", "e" * 121, "pattern"),
        ("Signup", "event", "new\nline", "pattern"),
    ],
)
async def test_invalid_goals_name_the_field(
    accounts: Accounts, oltp_engine: AsyncEngine, name: str, kind: str, pattern: str, field: str
) -> None:
    goals = Goals(oltp_engine)
    site = await _site(accounts)
    with pytest.raises(InvalidGoal) as caught:
        await goals.create(site.tenant_id, site.id, name, kind, pattern)
    assert caught.value.field == field
    assert await goals.list(site.tenant_id, site.id) == []


async def test_limits_that_are_allowed(accounts: Accounts, oltp_engine: AsyncEngine) -> None:
    goals = Goals(oltp_engine)
    site = await _site(accounts)
    await goals.create(site.tenant_id, site.id, "n" * 120, "page", "/" + "a" * 2047)
    await goals.create(site.tenant_id, site.id, "Unicode ✓", "event", "e" * 120)


async def test_changing_kind_checks_the_pattern_against_the_new_kind(
    accounts: Accounts, oltp_engine: AsyncEngine
) -> None:
    goals = Goals(oltp_engine)
    site = await _site(accounts)
    goal = await goals.create(site.tenant_id, site.id, "Signup", "event", "signup")
    with pytest.raises(InvalidGoal) as caught:
        await goals.update(site.tenant_id, goal.id, kind="page")
    assert caught.value.field == "pattern"
    changed = await goals.update(site.tenant_id, goal.id, kind="page", pattern="/signup")
    assert changed is not None
    assert (changed.kind, changed.pattern) == ("page", "/signup")
    assert await goals.get(site.tenant_id, goal.id) == changed


async def test_goals_per_site_are_bounded(accounts: Accounts, oltp_engine: AsyncEngine) -> None:
    goals = Goals(oltp_engine)
    site = await _site(accounts)
    for index in range(MAX_GOALS_PER_SITE):
        await goals.create(site.tenant_id, site.id, f"Goal {index}", "event", f"e{index}")
    with pytest.raises(InvalidGoal) as caught:
        await goals.create(site.tenant_id, site.id, "One too many", "event", "more")
    assert caught.value.field == "site"
    assert len(await goals.list(site.tenant_id, site.id)) == MAX_GOALS_PER_SITE
