"""Managing a site's public share links (sites:write): list, create (optionally with a password), revoke.

A new link's URL is shown once, on the answer to its creation: only a hash of its token is kept.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

import msgspec
from litestar import Controller, Request, get, post
from litestar.datastructures import State
from litestar.di import NamedDependency, Provide
from litestar.enums import RequestEncodingType
from litestar.params import Body, FromPath
from litestar.response import Redirect, Template

from pulse.dashboard.page_errors import PAGE_ERRORS
from pulse.dashboard.session import page_scope
from pulse.dashboard.share_unlock import share_path
from pulse.dashboard.site_admin import SiteAdmin
from pulse.oltp.accounts import Site
from pulse.oltp.goals import UnknownSite
from pulse.oltp.share_links import InvalidShareLink, ShareLinks
from pulse.stats.service import SiteNotFound
from pulse.tenancy import TenantScope

# Far above any valid field (pulse.oltp.share_links checks the real limits and names them).
_FIELD = Annotated[str, msgspec.Meta(max_length=8192)]


class ShareForm(msgspec.Struct, frozen=True):
    label: _FIELD = ""
    password: _FIELD = ""


class SharePages(Controller):
    path = "/sites/{site_id:str}/share"
    dependencies = {"tenant": Provide(page_scope)}
    exception_handlers = PAGE_ERRORS
    include_in_schema = False

    @get("/")
    async def links(
        self,
        site_id: FromPath[str],
        tenant: NamedDependency[TenantScope],
        site_admin: NamedDependency[SiteAdmin],
        share_links: NamedDependency[ShareLinks],
    ) -> Template:
        site = await _writable_site(tenant, site_admin, site_id)
        return await _page(tenant, site, share_links)

    @post("/")
    async def create(
        self,
        request: Request[None, None, State],
        site_id: FromPath[str],
        data: Annotated[ShareForm, Body(media_type=RequestEncodingType.URL_ENCODED)],
        tenant: NamedDependency[TenantScope],
        site_admin: NamedDependency[SiteAdmin],
        share_links: NamedDependency[ShareLinks],
    ) -> Template:
        site = await _writable_site(tenant, site_admin, site_id)
        try:
            link, token = await share_links.create(tenant.tenant_id, site.id, data.label, data.password)
        except InvalidShareLink as exc:
            error = f"{exc.field.capitalize()}: {exc.reason}"
            return await _page(tenant, site, share_links, label=data.label, error=error, status=400)
        except UnknownSite:
            raise SiteNotFound(site.id) from None
        created = {"label": link.label, "url": str(request.base_url).rstrip("/") + share_path(token)}
        return await _page(tenant, site, share_links, created=created, status=201)

    @post("/{link_id:str}/revoke")
    async def revoke(
        self,
        site_id: FromPath[str],
        link_id: FromPath[str],
        tenant: NamedDependency[TenantScope],
        site_admin: NamedDependency[SiteAdmin],
        share_links: NamedDependency[ShareLinks],
    ) -> Redirect:
        site = await _writable_site(tenant, site_admin, site_id)
        if not await share_links.revoke(tenant.tenant_id, site.id, link_id):
            raise SiteNotFound(site.id)
        return Redirect(f"/sites/{site.id}/share", status_code=303)


async def _writable_site(tenant: TenantScope, site_admin: SiteAdmin, site_id: str) -> Site:
    # Share links open a site's figures to anyone: seeing and changing them both need sites:write.
    tenant.require("sites:write")
    return await site_admin.site(tenant, site_id)


async def _page(
    tenant: TenantScope,
    site: Site,
    share_links: ShareLinks,
    *,
    label: str = "",
    error: str | None = None,
    created: dict[str, Any] | None = None,
    status: int = 200,
) -> Template:
    return Template(
        "share_links.html",
        context={
            "tenant": tenant,
            "site": site,
            "links": [
                (link, _when(link.created_at)) for link in await share_links.list(tenant.tenant_id, site.id)
            ],
            "label": label,
            "error": error,
            "created": created,
        },
        status_code=status,
    )


def _when(epoch_ms: int) -> str:
    return datetime.fromtimestamp(epoch_ms / 1000, UTC).strftime("%Y-%m-%d %H:%M UTC")
