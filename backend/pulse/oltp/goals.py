"""Goals: a site's conversions, a pageview path pattern or a custom event name."""

from __future__ import annotations

import re
import time
import uuid
from typing import Any, Literal, get_args

import msgspec
from sqlalchemy import (
    BigInteger,
    Column,
    MetaData,
    Row,
    Table,
    Text,
    and_,
    delete,
    func,
    insert,
    literal,
    select,
)
from sqlalchemy import update as sql_update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine

from pulse.oltp.accounts import SITES, FieldRefused, tenant_has_site
from pulse.oltp.text_checks import has_control_characters, line_refusal

GoalKind = Literal["page", "event"]
GOAL_KINDS: tuple[GoalKind, ...] = get_args(GoalKind)

MAX_GOAL_NAME_LENGTH = 120
MAX_PAGE_PATTERN_LENGTH = 2048
# The collector's limit on an event name (pulse.events.beacon.Name): a longer goal could never match.
MAX_EVENT_NAME_LENGTH = 120
# Every goal is a column of the goals report and a condition in its query; a few hundred is a mistake.
MAX_GOALS_PER_SITE = 100

_HEX_ID = re.compile("[0-9a-f]{32}")


class Goal(msgspec.Struct, frozen=True, kw_only=True):
    id: str
    tenant_id: str
    site_id: str
    name: str
    kind: GoalKind
    # kind "page": a path where * matches any run of characters (/blog/*); kind "event": an event name.
    pattern: str
    created_at: int


class InvalidGoal(FieldRefused):
    """A goal refused, naming the field (name, kind or pattern) at fault."""


class DuplicateGoalName(InvalidGoal):
    def __init__(self, name: str) -> None:
        super().__init__("name", f"this site already has a goal named {name!r}")


class UnknownSite(LookupError):
    """The site does not exist or belongs to another tenant; callers cannot tell which, by design."""

    def __init__(self, site_id: str) -> None:
        super().__init__(f"unknown site {site_id!r}")
        self.site_id = site_id


_metadata = MetaData()
_goals = Table(
    "goals",
    _metadata,
    Column("id", Text, primary_key=True),
    Column("tenant_id", Text),
    Column("site_id", Text),
    Column("name", Text),
    Column("kind", Text),
    Column("pattern", Text),
    Column("created_at", BigInteger),
)


class Goals:
    """Every statement is scoped by tenant id: another tenant's site or goal is as unknown as a missing one."""

    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine

    async def create(self, tenant_id: str, site_id: str, name: str, kind: str, pattern: str) -> Goal:
        checked_kind = checked_kind_of(kind)
        goal = Goal(
            id=uuid.uuid4().hex,
            tenant_id=tenant_id,
            site_id=site_id,
            name=checked_name(name),
            kind=checked_kind,
            pattern=checked_pattern(checked_kind, pattern),
            created_at=time.time_ns() // 1_000_000,
        )
        if not _HEX_ID.fullmatch(tenant_id):
            raise UnknownSite(site_id)
        goal_count = (
            select(func.count()).select_from(_goals).where(_goals.c.site_id == site_id).scalar_subquery()
        )
        # One statement that inserts only for the tenant's own site, and only below the limit: on
        # SQLite a write transaction must start with its write (see pulse.oltp.db), and no check
        # made beforehand can be overtaken by a concurrent request.
        source = select(
            *(literal(value).label(key) for key, value in msgspec.structs.asdict(goal).items())
        ).where(
            select(SITES.c.id).where(and_(SITES.c.id == site_id, SITES.c.tenant_id == tenant_id)).exists(),
            goal_count < MAX_GOALS_PER_SITE,
        )
        try:
            async with self._engine.begin() as conn:
                result = await conn.execute(insert(_goals).from_select(list(_goals.c.keys()), source))
        except IntegrityError as exc:
            raise DuplicateGoalName(goal.name) from exc
        if result.rowcount == 0:
            if await tenant_has_site(self._engine, tenant_id, site_id):
                raise InvalidGoal("site", f"a site may have at most {MAX_GOALS_PER_SITE} goals")
            raise UnknownSite(site_id)
        return goal

    async def list(self, tenant_id: str, site_id: str) -> list[Goal]:
        query = (
            select(_goals)
            .where(_goals.c.tenant_id == tenant_id, _goals.c.site_id == site_id)
            .order_by(_goals.c.created_at, _goals.c.id)
        )
        async with self._engine.connect() as conn:
            return [_goal(row) for row in await conn.execute(query)]

    async def get(self, tenant_id: str, goal_id: str) -> Goal | None:
        if not (_HEX_ID.fullmatch(goal_id) and _HEX_ID.fullmatch(tenant_id)):
            return None
        query = select(_goals).where(_goals.c.id == goal_id, _goals.c.tenant_id == tenant_id)
        async with self._engine.connect() as conn:
            row = (await conn.execute(query)).first()
        return None if row is None else _goal(row)

    async def update(
        self,
        tenant_id: str,
        goal_id: str,
        *,
        name: str | None = None,
        kind: str | None = None,
        pattern: str | None = None,
    ) -> Goal | None:
        """Change the given fields; None when there is no such goal for this tenant."""
        current = await self.get(tenant_id, goal_id)
        if current is None:
            return None
        new_kind = current.kind if kind is None else checked_kind_of(kind)
        changes = {
            "name": current.name if name is None else checked_name(name),
            "kind": new_kind,
            # A pattern checked against the kind it will have: /blog/* is no event name.
            "pattern": checked_pattern(new_kind, current.pattern if pattern is None else pattern),
        }
        statement = (
            sql_update(_goals)
            # Matching the kind read keeps a concurrent kind change from pairing with a pattern checked
            # for the other kind.
            .where(_goals.c.id == goal_id, _goals.c.tenant_id == tenant_id, _goals.c.kind == current.kind)
            .values(changes)
        )
        try:
            async with self._engine.begin() as conn:
                result = await conn.execute(statement)
        except IntegrityError as exc:
            raise DuplicateGoalName(str(changes["name"])) from exc
        if result.rowcount == 0:
            return None
        return msgspec.structs.replace(current, **changes)

    async def delete(self, tenant_id: str, goal_id: str) -> bool:
        if not (_HEX_ID.fullmatch(goal_id) and _HEX_ID.fullmatch(tenant_id)):
            return False
        async with self._engine.begin() as conn:
            result = await conn.execute(
                delete(_goals).where(_goals.c.id == goal_id, _goals.c.tenant_id == tenant_id)
            )
        return bool(result.rowcount)


def checked_name(name: str) -> str:
    name = name.strip()
    if (reason := line_refusal(name, MAX_GOAL_NAME_LENGTH)) is not None:
        raise InvalidGoal("name", reason)
    return name


def checked_kind_of(kind: str) -> GoalKind:
    for known in GOAL_KINDS:
        if kind == known:
            return known
    raise InvalidGoal("kind", f"must be one of {', '.join(GOAL_KINDS)}")


def checked_pattern(kind: GoalKind, pattern: str) -> str:
    """A page goal's path pattern or an event goal's event name, as the collector would accept it."""
    if kind == "page":
        if not pattern.startswith("/"):
            raise InvalidGoal("pattern", "a page goal's pattern is a path starting with / (such as /blog/*)")
        if len(pattern) > MAX_PAGE_PATTERN_LENGTH:
            raise InvalidGoal("pattern", f"must be at most {MAX_PAGE_PATTERN_LENGTH} characters")
        # Paths arrive percent-encoded, so a raw space could never match.
        if any(c.isspace() for c in pattern) or has_control_characters(pattern):
            raise InvalidGoal("pattern", "a path must not contain spaces or control characters")
        return pattern
    if not pattern.strip():
        raise InvalidGoal("pattern", "an event goal's pattern is an event name and must not be empty")
    if len(pattern) > MAX_EVENT_NAME_LENGTH:
        raise InvalidGoal("pattern", f"an event name is at most {MAX_EVENT_NAME_LENGTH} characters")
    if has_control_characters(pattern):
        raise InvalidGoal("pattern", "an event name must not contain control characters")
    return pattern


def _goal(row: Row[*tuple[Any, ...]]) -> Goal:
    return Goal(
        id=row.id,
        tenant_id=row.tenant_id,
        site_id=row.site_id,
        name=row.name,
        kind=checked_kind_of(row.kind),
        pattern=row.pattern,
        created_at=row.created_at,
    )
