"""Management API (JSON): a tenant's sites and their goals, for bearer-token clients.

Bodies are decoded strictly (unknown fields refused) and every refusal is a 400 whose `details`
name the field, whether msgspec refused it or the store's own checks did.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

import msgspec
from litestar import Controller, Request, Response, delete, get, patch, post
from litestar.datastructures import State
from litestar.di import NamedDependency, Provide
from litestar.params import FromPath, JSONBody
from litestar.status_codes import HTTP_200_OK, HTTP_204_NO_CONTENT, HTTP_400_BAD_REQUEST, HTTP_404_NOT_FOUND
from litestar.types import ExceptionHandlersMap

from pulse.dashboard.session import api_scope
from pulse.dashboard.site_admin import GoalNotFound, SiteAdmin
from pulse.oltp.accounts import MAX_ALLOWED_HOSTS, MAX_NAME_LENGTH, InvalidSite, Site, VisitorMode
from pulse.oltp.goals import MAX_GOAL_NAME_LENGTH, MAX_PAGE_PATTERN_LENGTH, Goal, GoalKind, InvalidGoal
from pulse.tenancy import TenantScope

SiteName = Annotated[str, msgspec.Meta(min_length=1, max_length=MAX_NAME_LENGTH, examples=["Shop"])]
Domain = Annotated[str, msgspec.Meta(min_length=1, max_length=MAX_NAME_LENGTH, examples=["shop.example"])]
AllowedHosts = Annotated[
    list[Annotated[str, msgspec.Meta(min_length=1, max_length=253)]],
    msgspec.Meta(
        max_length=MAX_ALLOWED_HOSTS,
        description="Hostnames the collector accepts the site's events from (`*.shop.example` for every "
        "subdomain); empty accepts any host.",
        examples=[["shop.example", "*.shop.example"]],
    ),
]
TimeZone = Annotated[
    str,
    msgspec.Meta(
        min_length=1,
        max_length=64,
        description="IANA time zone the site's days start in for reports.",
        examples=["Europe/Paris"],
    ),
]
Visitors = Annotated[
    VisitorMode,
    msgspec.Meta(
        description="How visitors are told apart: `cookieless` (a hash of IP and User-Agent with a salt "
        'that rotates daily; nothing is stored in the browser) or `cookie` (the snippet gets data-visitor="cookie" '
        "and the tracker keeps a random first-party id in localStorage, so returning visitors are "
        "recognised across days; the collector ignores such ids for a cookieless site).",
        examples=["cookieless"],
    ),
]
GoalName = Annotated[str, msgspec.Meta(min_length=1, max_length=MAX_GOAL_NAME_LENGTH, examples=["Signup"])]
Pattern = Annotated[
    str,
    msgspec.Meta(
        min_length=1,
        max_length=MAX_PAGE_PATTERN_LENGTH,
        description="kind page: a path starting with /, where * matches any run of characters; "
        "kind event: the custom event's name.",
        examples=["/blog/*"],
    ),
]

DISABLED_NOTE = (
    "The site is disabled, not erased: the collector refuses its events (within a minute) and its "
    'stats and goals are kept. PATCH it with {"disabled": false} to collect again.'
)


class NewSite(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    name: SiteName
    domain: Domain
    allowed_hosts: AllowedHosts = []
    timezone: TimeZone = "UTC"
    visitor_mode: Visitors = "cookieless"


class SiteChanges(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """Only the fields given change."""

    name: SiteName | msgspec.UnsetType = msgspec.UNSET
    domain: Domain | msgspec.UnsetType = msgspec.UNSET
    allowed_hosts: AllowedHosts | msgspec.UnsetType = msgspec.UNSET
    timezone: TimeZone | msgspec.UnsetType = msgspec.UNSET
    visitor_mode: Visitors | msgspec.UnsetType = msgspec.UNSET
    disabled: bool | msgspec.UnsetType = msgspec.UNSET


class SiteOut(msgspec.Struct, frozen=True):
    id: Annotated[str, msgspec.Meta(description="The site key, as in the tracking snippet.")]
    name: str
    domain: str
    allowed_hosts: list[str]
    timezone: str
    visitor_mode: VisitorMode
    disabled: bool
    created_at: datetime


class SiteList(msgspec.Struct, frozen=True):
    sites: list[SiteOut]


class DisabledSite(msgspec.Struct, frozen=True):
    site: SiteOut
    detail: str


class NewGoal(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    name: GoalName
    kind: GoalKind
    pattern: Pattern


class GoalChanges(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """Only the fields given change; a new kind needs a pattern valid for it."""

    name: GoalName | msgspec.UnsetType = msgspec.UNSET
    kind: GoalKind | msgspec.UnsetType = msgspec.UNSET
    pattern: Pattern | msgspec.UnsetType = msgspec.UNSET


class GoalOut(msgspec.Struct, frozen=True):
    id: str
    site_id: str
    name: str
    kind: GoalKind
    pattern: str
    created_at: datetime


class GoalList(msgspec.Struct, frozen=True):
    goals: list[GoalOut]


def _invalid(
    request: Request[Any, Any, State], exc: InvalidSite | InvalidGoal
) -> Response[dict[str, object]]:
    # The shape Litestar gives a body msgspec refused, so clients read every 400 one way.
    detail = {"message": exc.reason, "key": exc.field, "source": "body"}
    body: dict[str, object] = {"error": f"{exc.field}: {exc.reason}", "details": [detail]}
    return Response(body, status_code=HTTP_400_BAD_REQUEST)


def _goal_not_found(_: Request[Any, Any, State], __: GoalNotFound) -> Response[dict[str, str]]:
    return Response({"error": "no such goal"}, status_code=HTTP_404_NOT_FOUND)


_HANDLERS: ExceptionHandlersMap = {
    InvalidSite: _invalid,
    InvalidGoal: _invalid,
    GoalNotFound: _goal_not_found,
}
_SCOPE = {"tenant": Provide(api_scope)}


class SitesController(Controller):
    path = "/api/v1/sites"
    tags = ["sites"]
    dependencies = _SCOPE
    exception_handlers = _HANDLERS

    @get("/", summary="The tenant's sites (stats:read)")
    async def list_sites(
        self, tenant: NamedDependency[TenantScope], site_admin: NamedDependency[SiteAdmin]
    ) -> SiteList:
        return SiteList([_site(site) for site in await site_admin.sites(tenant)])

    @post("/", summary="Create a site (sites:write)")
    async def create_site(
        self,
        data: JSONBody[NewSite],
        tenant: NamedDependency[TenantScope],
        site_admin: NamedDependency[SiteAdmin],
    ) -> SiteOut:
        site = await site_admin.create_site(
            tenant, data.name, data.domain, data.allowed_hosts, data.timezone, data.visitor_mode
        )
        return _site(site)

    @get("/{site_id:str}", summary="One site (stats:read)")
    async def get_site(
        self,
        site_id: FromPath[str],
        tenant: NamedDependency[TenantScope],
        site_admin: NamedDependency[SiteAdmin],
    ) -> SiteOut:
        return _site(await site_admin.site(tenant, site_id))

    @patch("/{site_id:str}", summary="Change a site's settings (sites:write)")
    async def update_site(
        self,
        site_id: FromPath[str],
        data: JSONBody[SiteChanges],
        tenant: NamedDependency[TenantScope],
        site_admin: NamedDependency[SiteAdmin],
    ) -> SiteOut:
        site = await site_admin.update_site(
            tenant,
            site_id,
            name=_given(data.name),
            domain=_given(data.domain),
            allowed_hosts=_given(data.allowed_hosts),
            timezone=_given(data.timezone),
            visitor_mode=_given(data.visitor_mode),
            disabled=_given(data.disabled),
        )
        return _site(site)

    @delete(
        "/{site_id:str}",
        status_code=HTTP_200_OK,
        summary="Disable a site, keeping its data (sites:write)",
        description=DISABLED_NOTE,
    )
    async def delete_site(
        self,
        site_id: FromPath[str],
        tenant: NamedDependency[TenantScope],
        site_admin: NamedDependency[SiteAdmin],
    ) -> DisabledSite:
        site = await site_admin.update_site(tenant, site_id, disabled=True)
        return DisabledSite(site=_site(site), detail=DISABLED_NOTE)


class GoalsController(Controller):
    path = "/api/v1/sites/{site_id:str}/goals"
    tags = ["goals"]
    dependencies = _SCOPE
    exception_handlers = _HANDLERS

    @get("/", summary="A site's goals (stats:read)")
    async def list_goals(
        self,
        site_id: FromPath[str],
        tenant: NamedDependency[TenantScope],
        site_admin: NamedDependency[SiteAdmin],
    ) -> GoalList:
        return GoalList([_goal(goal) for goal in await site_admin.goals(tenant, site_id)])

    @post("/", summary="Add a goal to a site (sites:write)")
    async def create_goal(
        self,
        site_id: FromPath[str],
        data: JSONBody[NewGoal],
        tenant: NamedDependency[TenantScope],
        site_admin: NamedDependency[SiteAdmin],
    ) -> GoalOut:
        return _goal(await site_admin.create_goal(tenant, site_id, data.name, data.kind, data.pattern))

    @get("/{goal_id:str}", summary="One goal (stats:read)")
    async def get_goal(
        self,
        site_id: FromPath[str],
        goal_id: FromPath[str],
        tenant: NamedDependency[TenantScope],
        site_admin: NamedDependency[SiteAdmin],
    ) -> GoalOut:
        return _goal(await site_admin.goal(tenant, site_id, goal_id))

    @patch("/{goal_id:str}", summary="Change a goal (sites:write)")
    async def update_goal(
        self,
        site_id: FromPath[str],
        goal_id: FromPath[str],
        data: JSONBody[GoalChanges],
        tenant: NamedDependency[TenantScope],
        site_admin: NamedDependency[SiteAdmin],
    ) -> GoalOut:
        goal = await site_admin.update_goal(
            tenant,
            site_id,
            goal_id,
            name=_given(data.name),
            kind=_given(data.kind),
            pattern=_given(data.pattern),
        )
        return _goal(goal)

    @delete("/{goal_id:str}", status_code=HTTP_204_NO_CONTENT, summary="Delete a goal (sites:write)")
    async def delete_goal(
        self,
        site_id: FromPath[str],
        goal_id: FromPath[str],
        tenant: NamedDependency[TenantScope],
        site_admin: NamedDependency[SiteAdmin],
    ) -> None:
        await site_admin.delete_goal(tenant, site_id, goal_id)


def _given[T](value: T | msgspec.UnsetType) -> T | None:
    return None if isinstance(value, msgspec.UnsetType) else value


def _time(epoch_ms: int) -> datetime:
    return datetime.fromtimestamp(epoch_ms / 1000, UTC)


def _site(site: Site) -> SiteOut:
    return SiteOut(
        id=site.id,
        name=site.name,
        domain=site.domain,
        allowed_hosts=list(site.allowed_hosts),
        timezone=site.timezone,
        visitor_mode=site.visitor_mode,
        disabled=site.disabled,
        created_at=_time(site.created_at),
    )


def _goal(goal: Goal) -> GoalOut:
    return GoalOut(
        id=goal.id,
        site_id=goal.site_id,
        name=goal.name,
        kind=goal.kind,
        pattern=goal.pattern,
        created_at=_time(goal.created_at),
    )
