"""The team page (members, their roles, invitations) and the invitation link's page.

Changing the team needs the members:write permission (owners and admins); the owner-only rules
are the store's (pulse.oltp.members), which reads the acting user's role as stored now. Changes
answer with a redirect back to the team page and a notice; a refusal re-renders the page with the
reason. An invitation's link is shown once, on the page that answers its creation, as only its
hash is kept.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Annotated

import msgspec
from litestar import Controller, get, post
from litestar.di import NamedDependency, Provide
from litestar.enums import RequestEncodingType
from litestar.params import Body, FromPath, FromQuery
from litestar.response import Redirect, Template

from pulse.auth.tokens import TokenService
from pulse.dashboard.page_errors import PAGE_ERRORS
from pulse.dashboard.session import page_scope, session_cookie
from pulse.oltp.accounts import MAX_EMAIL_LENGTH, Accounts, DuplicateEmail
from pulse.oltp.invitations import (
    MAX_PASSWORD_LENGTH,
    MIN_PASSWORD_LENGTH,
    Invitation,
    Invitations,
    InvitationUnusable,
    Unusable,
)
from pulse.oltp.members import (
    ROLES,
    LastOwner,
    Members,
    NotPermitted,
    TeamChangeRefused,
    UnknownMember,
)
from pulse.settings import Settings
from pulse.tenancy import TenantScope

# The notice after a redirect comes from this table, never from the query string itself.
NOTICES: dict[str, str] = {
    "revoked": "Invitation revoked: its link no longer works.",
    "role": "Role changed.",
    "removed": "Member removed: they lost access to this team.",
}
UNUSABLE: dict[Unusable, tuple[int, str]] = {
    "unknown": (
        404,
        "This invitation link is not valid. It may have been revoked or copied incompletely: "
        "ask whoever invited you for a new one.",
    ),
    "expired": (
        410,
        "This invitation has expired (they last 7 days): ask whoever invited you for a new one.",
    ),
    "used": (410, "This invitation has been used already. Log in with the password you chose."),
}
# The link is the invitee's credential: it must not leak to another site, nor stay in a cache.
PRIVATE = {"Referrer-Policy": "no-referrer", "Cache-Control": "no-store"}


# Bounds on what one form post makes the server hold. They are looser than the stores' checks, so
# that a value just over a limit gets the form back with the reason rather than a bare 400.
_FIELD = Annotated[str, msgspec.Meta(max_length=4 * MAX_EMAIL_LENGTH)]
_PASSWORD = Annotated[str, msgspec.Meta(max_length=4 * MAX_PASSWORD_LENGTH)]


class InviteForm(msgspec.Struct, frozen=True):
    email: _FIELD = ""
    role: _FIELD = "viewer"


class RoleForm(msgspec.Struct, frozen=True):
    role: _FIELD = ""


class PasswordForm(msgspec.Struct, frozen=True):
    password: _PASSWORD = ""
    confirm: _PASSWORD = ""


Form = Body(media_type=RequestEncodingType.URL_ENCODED)


class TeamPages(Controller):
    path = "/team"
    dependencies = {"tenant": Provide(page_scope)}
    include_in_schema = False
    exception_handlers = PAGE_ERRORS

    @get("/")
    async def team(
        self,
        tenant: NamedDependency[TenantScope],
        members: NamedDependency[Members],
        invitations: NamedDependency[Invitations],
        done: FromQuery[str] = "",
    ) -> Template:
        tenant.require("stats:read")
        return await _team_page(tenant, members, invitations, notice=NOTICES.get(done))

    @post("/invitations")
    async def invite(
        self,
        data: Annotated[InviteForm, Form],
        tenant: NamedDependency[TenantScope],
        members: NamedDependency[Members],
        invitations: NamedDependency[Invitations],
        settings: NamedDependency[Settings],
    ) -> Template:
        tenant.require("members:write")
        try:
            invitation, token = await invitations.create(
                tenant.tenant_id, tenant.subject, data.email, data.role
            )
        except TeamChangeRefused as exc:
            return await _team_page(
                tenant, members, invitations, error=str(exc), status=_status(exc), form=data
            )
        return await _team_page(
            tenant,
            members,
            invitations,
            notice=f"Invitation for {invitation.email} as {invitation.role} created.",
            link=f"{settings.dashboard_url}/invite/{token}",
            status=201,
        )

    @post("/invitations/{invitation_id:str}/revoke")
    async def revoke(
        self,
        invitation_id: FromPath[str],
        tenant: NamedDependency[TenantScope],
        members: NamedDependency[Members],
        invitations: NamedDependency[Invitations],
    ) -> Template | Redirect:
        tenant.require("members:write")
        try:
            revoked = await invitations.revoke(tenant.tenant_id, tenant.subject, invitation_id)
        except TeamChangeRefused as exc:
            return await _team_page(tenant, members, invitations, error=str(exc), status=_status(exc))
        if revoked is None:
            error = "No such pending invitation in this team: it may have been accepted or revoked already."
            return await _team_page(tenant, members, invitations, error=error, status=404)
        return Redirect("/team?done=revoked", status_code=303)

    @post("/members/{user_id:str}/role")
    async def change_role(
        self,
        user_id: FromPath[str],
        data: Annotated[RoleForm, Form],
        tenant: NamedDependency[TenantScope],
        members: NamedDependency[Members],
        invitations: NamedDependency[Invitations],
        tokens: NamedDependency[TokenService],
    ) -> Template | Redirect:
        tenant.require("members:write")
        try:
            await members.change_role(tenant.tenant_id, tenant.subject, user_id, data.role)
        except (TeamChangeRefused, UnknownMember) as exc:
            return await _team_page(tenant, members, invitations, error=_reason(exc), status=_status(exc))
        tokens.forget_member(tenant.tenant_id, user_id)
        return Redirect("/team?done=role", status_code=303)

    @post("/members/{user_id:str}/remove")
    async def remove(
        self,
        user_id: FromPath[str],
        tenant: NamedDependency[TenantScope],
        members: NamedDependency[Members],
        invitations: NamedDependency[Invitations],
        tokens: NamedDependency[TokenService],
    ) -> Template | Redirect:
        tenant.require("members:write")
        try:
            await members.remove(tenant.tenant_id, tenant.subject, user_id)
        except (TeamChangeRefused, UnknownMember) as exc:
            return await _team_page(tenant, members, invitations, error=_reason(exc), status=_status(exc))
        tokens.forget_member(tenant.tenant_id, user_id)
        return Redirect("/team?done=removed", status_code=303)


class InvitePages(Controller):
    """Public: the link's token is the credential, and names its one tenant."""

    path = "/invite"
    include_in_schema = False

    @get("/{token:str}")
    async def invite_form(
        self,
        token: FromPath[str],
        invitations: NamedDependency[Invitations],
        accounts: NamedDependency[Accounts],
    ) -> Template:
        try:
            invitation = await invitations.usable(token)
        except InvitationUnusable as exc:
            return _unusable(exc.why)
        return await _accept_page(invitation, accounts)

    @post("/{token:str}")
    async def accept(
        self,
        token: FromPath[str],
        data: Annotated[PasswordForm, Form],
        invitations: NamedDependency[Invitations],
        accounts: NamedDependency[Accounts],
        tokens: NamedDependency[TokenService],
        settings: NamedDependency[Settings],
    ) -> Template | Redirect:
        try:
            invitation = await invitations.usable(token)
        except InvitationUnusable as exc:
            return _unusable(exc.why)
        if data.password != data.confirm:
            return await _accept_page(invitation, accounts, "The two passwords differ.", 400)
        try:
            member = await invitations.accept(token, data.password)
        except InvitationUnusable as exc:
            return _unusable(exc.why)
        except DuplicateEmail:
            return Template(
                "invite_unusable.html",
                context={"message": "An account with this email exists already: log in with it instead."},
                status_code=409,
                headers=PRIVATE,
            )
        except ValueError as exc:
            return await _accept_page(invitation, accounts, f"{str(exc).capitalize()}.", 400)
        cookie = session_cookie((await tokens.issue_user(member)).token, settings)
        return Redirect("/sites", cookies=[cookie], status_code=303)


async def _team_page(
    tenant: TenantScope,
    members: Members,
    invitations: Invitations,
    *,
    notice: str | None = None,
    error: str | None = None,
    link: str | None = None,
    form: InviteForm | None = None,
    status: int = 200,
) -> Template:
    listed = await members.list(tenant.tenant_id)
    return Template(
        "team.html",
        context={
            "tenant": tenant,
            "members": listed,
            "owners": sum(m.role == "owner" for m in listed),
            "pending": await invitations.pending(tenant.tenant_id),
            "now_ms": time.time() * 1000,
            "utc": _utc,
            "roles": ROLES,
            "can_manage": "members:write" in tenant.permissions,
            "notice": notice,
            "error": error,
            "link": link,
            "form": form or InviteForm(),
        },
        status_code=status,
        headers=PRIVATE if link else None,
    )


async def _accept_page(
    invitation: Invitation, accounts: Accounts, error: str | None = None, status: int = 200
) -> Template:
    tenant = await accounts.get_tenant(invitation.tenant_id)
    return Template(
        "invite.html",
        context={
            "invitation": invitation,
            "team": tenant.name if tenant else "",
            "utc": _utc,
            "min_length": MIN_PASSWORD_LENGTH,
            "max_length": MAX_PASSWORD_LENGTH,
            "error": error,
        },
        status_code=status,
        headers=PRIVATE,
    )


def _unusable(why: Unusable) -> Template:
    status, message = UNUSABLE[why]
    return Template("invite_unusable.html", context={"message": message}, status_code=status, headers=PRIVATE)


def _status(exc: TeamChangeRefused | UnknownMember) -> int:
    if isinstance(exc, UnknownMember):
        return 404
    if isinstance(exc, NotPermitted):
        return 403
    if isinstance(exc, LastOwner):
        return 409
    return 400


def _reason(exc: TeamChangeRefused | UnknownMember) -> str:
    return "No such member in this team." if isinstance(exc, UnknownMember) else str(exc)


def _utc(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%d %H:%M UTC")
