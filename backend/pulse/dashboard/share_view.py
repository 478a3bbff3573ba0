"""The public, read-only dashboard of one site behind a share link: GET /share/{token}/...

Every request finds its link by the token, asks for the password proof where the link has one,
and reads with a scope made here: the link's tenant, stats:read only, and the link's own site.
No handler takes a site id from the request, so no path or query can point it at another site.
"""

from __future__ import annotations

from typing import Annotated, Any

import msgspec
from litestar import Controller, Request, Response, get, post
from litestar.datastructures import CacheControlHeader, State
from litestar.di import NamedDependency, Provide
from litestar.enums import RequestEncodingType
from litestar.exceptions import NotFoundException
from litestar.params import Body, FromPath
from litestar.response import Redirect, Stream, Template

from pulse.dashboard.live import event_stream
from pulse.dashboard.live_figures import LiveSource
from pulse.dashboard.overview_pages import Overviews, provide_overviews, render_page, request_params
from pulse.dashboard.overview_view import OverviewParams, ParamError
from pulse.dashboard.page_errors import PAGE_ERRORS, ShareNotFound
from pulse.dashboard.rate_limit import LoginThrottle
from pulse.dashboard.share_unlock import UNLOCK_COOKIE, ShareUnlock, share_path
from pulse.live.hub import TickHub
from pulse.oltp.accounts import MAX_PASSWORD_LENGTH, Site
from pulse.oltp.share_links import OpenLink, ShareLink, ShareLinks
from pulse.stats.service import SiteNotFound, StatsService
from pulse.tenancy import TenantScope


class UnlockForm(msgspec.Struct, frozen=True):
    password: Annotated[str, msgspec.Meta(max_length=MAX_PASSWORD_LENGTH)] = ""


class Shared(msgspec.Struct, frozen=True):
    """An admitted share request: what it may read, and nothing more."""

    token: str
    scope: TenantScope
    site: Site


class ShareLocked(Exception):
    """The link asks for a password this browser has not given."""


def share_scope(link: ShareLink) -> TenantScope:
    """Reads the link's tenant's figures, nothing else: no role, no other permission."""
    return TenantScope(
        tenant_id=link.tenant_id, subject=f"share:{link.id}", permissions=frozenset({"stats:read"})
    )


async def open_link(share_links: ShareLinks, token: str) -> OpenLink:
    opened = await share_links.open(token)
    if opened is None:
        raise ShareNotFound
    return opened


async def admitted(
    request: Request[Any, Any, State],
    token: str,
    share_links: ShareLinks,
    share_unlock: ShareUnlock,
    stats: StatsService,
) -> Shared:
    opened = await open_link(share_links, token)
    if not share_unlock.admits(opened, request.cookies.get(UNLOCK_COOKIE)):
        raise ShareLocked
    scope = share_scope(opened.link)
    try:
        # The ownership check of every other figure: the link's site, within the link's tenant.
        site = await stats.site(scope, opened.link.site_id)
    except SiteNotFound:
        raise ShareNotFound from None
    return Shared(token=token, scope=scope, site=site)


async def provide_shared(
    request: Request[Any, Any, State],
    token: FromPath[str],
    share_links: NamedDependency[ShareLinks],
    share_unlock: NamedDependency[ShareUnlock],
    stats: NamedDependency[StatsService],
) -> Shared:
    return await admitted(request, token, share_links, share_unlock, stats)


def _to_password_form(request: Request[Any, Any, State], _: ShareLocked) -> Redirect:
    token = request.path_params.get("token", "")
    return Redirect(share_path(token), status_code=303)


def _password_form(
    request: Request[Any, Any, State],
    token: str,
    error: str | None = None,
    status: int = 200,
    headers: dict[str, str] | None = None,
) -> Template:
    # The view asked for (its period and filters) is carried through the form and back.
    query = request.url.query
    return Template(
        "share_password.html",
        context={"share": True, "action": _with_query(f"{share_path(token)}/unlock", query), "error": error},
        status_code=status,
        headers=headers,
    )


def _with_query(path: str, query: str) -> str:
    return f"{path}?{query}" if query else path


class ShareView(Controller):
    path = "/share/{token:str}"
    dependencies = {"overviews": Provide(provide_overviews, sync_to_thread=False)}
    exception_handlers = {**PAGE_ERRORS, ShareLocked: _to_password_form}
    # A shared cache must not hand a password-protected view to whoever asks for its URL next.
    cache_control = CacheControlHeader(no_store=True, private=True)
    include_in_schema = False

    @get("/")
    async def overview(
        self,
        request: Request[Any, Any, State],
        token: FromPath[str],
        share_links: NamedDependency[ShareLinks],
        share_unlock: NamedDependency[ShareUnlock],
        stats: NamedDependency[StatsService],
        overviews: NamedDependency[Overviews],
        live: NamedDependency[LiveSource],
    ) -> Template:
        try:
            shared = await admitted(request, token, share_links, share_unlock, stats)
        except ShareLocked:
            return _password_form(request, token)

        async def build(params: OverviewParams) -> dict[str, Any]:
            figures = await live.figures(shared.scope, shared.site.id)
            return await overviews.context(shared.scope, shared.site, params, share_token=token, live=figures)

        return await render_page(request, build, site=shared.site, base=share_path(token), tenant=None)

    @get("/panels/{panel:str}", dependencies={"shared": Provide(provide_shared)})
    async def panel(
        self,
        request: Request[Any, Any, State],
        panel: FromPath[str],
        shared: NamedDependency[Shared],
        overviews: NamedDependency[Overviews],
    ) -> Template:

        async def build(params: OverviewParams) -> dict[str, Any]:
            return await overviews.panel_context(
                shared.scope, shared.site, params, panel, share_token=shared.token
            )

        return await render_page(request, build, site=shared.site, base=share_path(shared.token), tenant=None)

    @get("/export/{file:str}", dependencies={"shared": Provide(provide_shared)})
    async def export(
        self,
        request: Request[Any, Any, State],
        file: FromPath[str],
        shared: NamedDependency[Shared],
        overviews: NamedDependency[Overviews],
    ) -> Response[bytes]:
        key = file.removesuffix(".csv")
        if key == file:
            raise NotFoundException("exports are /export/{panel}.csv")
        try:
            return await overviews.export_csv(shared.scope, shared.site, request_params(request), key)
        except ParamError as exc:
            return Response(f"{exc}\n".encode(), status_code=400, media_type="text/plain; charset=utf-8")

    @get("/live", dependencies={"shared": Provide(provide_shared)})
    async def live(
        self,
        shared: NamedDependency[Shared],
        hub: NamedDependency[TickHub],
    ) -> Stream:
        # The link's site's ticks only: the channel is named by the share scope's tenant and site.
        return event_stream(hub, shared.scope, shared.site.id)

    @post("/unlock")
    async def unlock(
        self,
        request: Request[Any, Any, State],
        token: FromPath[str],
        data: Annotated[UnlockForm, Body(media_type=RequestEncodingType.URL_ENCODED)],
        share_links: NamedDependency[ShareLinks],
        share_unlock: NamedDependency[ShareUnlock],
        login_throttle: NamedDependency[LoginThrottle],
    ) -> Template | Redirect:
        # Counted with the logins of the same client: one budget for guessing passwords.
        wait = login_throttle.wait_s(request)
        if wait:
            return _password_form(
                request,
                token,
                f"Too many attempts. Try again in {wait} seconds.",
                429,
                {"Retry-After": str(wait)},
            )
        opened = await open_link(share_links, token)
        if not await share_links.unlock(opened.link, data.password):
            return _password_form(request, token, "Wrong password.", 401)
        cookies = [share_unlock.cookie(opened, token)] if opened.link.protected else []
        # Back to the view asked for: always this link's own path, whatever the query says.
        return Redirect(_with_query(share_path(token), request.url.query), cookies=cookies, status_code=303)
