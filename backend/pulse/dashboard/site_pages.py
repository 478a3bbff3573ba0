"""The sites pages: the list, a new site, a site's settings, and its install page.

Every read and write goes through SiteAdmin, which checks the tenant and the permission; the
handlers only turn forms into its calls and its refusals into pages. A setting it refuses comes
back as the same form with the reason next to the field (400), never as an error page.
"""

from __future__ import annotations

import re
from typing import Annotated

import msgspec
from litestar import Controller, get, post
from litestar.di import NamedDependency, Provide
from litestar.enums import RequestEncodingType
from litestar.params import Body, FromPath, FromQuery
from litestar.response import Redirect, Template

from pulse.dashboard.page_errors import PAGE_ERRORS
from pulse.dashboard.session import page_scope
from pulse.dashboard.site_admin import SiteAdmin
from pulse.oltp.accounts import DEFAULT_TIMEZONE, InvalidSite, Site, time_zones
from pulse.settings import Settings
from pulse.stats.service import StatsService
from pulse.tenancy import TenantScope
from pulse.tracker_asset import load_tracker, snippets
from pulse.warehouse.reader import WarehouseUnavailable

# Bounds on what one form post can make the server hold; the store's own checks are tighter and
# are the ones a person sees (a host list of 50 names of 253 characters fits).
_FIELD = Annotated[str, msgspec.Meta(max_length=4096)]
_HOST_LIST = Annotated[str, msgspec.Meta(max_length=16384)]
# One host per line, as the form asks, or commas, as people paste lists. Not spaces: "not a host"
# is a mistake to show, not three hosts to allow.
_HOST_SEPARATORS = re.compile(r"[\r\n,]+")


class SiteForm(msgspec.Struct, frozen=True):
    name: _FIELD = ""
    domain: _FIELD = ""
    allowed_hosts: _HOST_LIST = ""
    timezone: _FIELD = DEFAULT_TIMEZONE
    visitor_mode: _FIELD = "cookieless"

    @classmethod
    def of(cls, site: Site) -> SiteForm:
        return cls(
            name=site.name,
            domain=site.domain,
            allowed_hosts="\n".join(site.allowed_hosts),
            timezone=site.timezone,
            visitor_mode=site.visitor_mode,
        )

    def hosts(self) -> list[str]:
        return [host.strip() for host in _HOST_SEPARATORS.split(self.allowed_hosts) if host.strip()]


FormBody = Body(media_type=RequestEncodingType.URL_ENCODED)


class SitePages(Controller):
    path = "/sites"
    dependencies = {"tenant": Provide(page_scope)}
    include_in_schema = False
    exception_handlers = PAGE_ERRORS

    @get("/")
    async def sites(
        self, tenant: NamedDependency[TenantScope], site_admin: NamedDependency[SiteAdmin]
    ) -> Template:
        return Template(
            "sites.html",
            context={
                "sites": await site_admin.sites(tenant),
                "tenant": tenant,
                "can_write": _can_write(tenant),
            },
        )

    @get("/new")
    async def new_site(self, tenant: NamedDependency[TenantScope]) -> Template:
        tenant.require("sites:write")
        return _new_form(tenant, SiteForm(), {}, guess_zone=True)

    @post("/new")
    async def create_site(
        self,
        data: Annotated[SiteForm, FormBody],
        tenant: NamedDependency[TenantScope],
        site_admin: NamedDependency[SiteAdmin],
    ) -> Template | Redirect:
        try:
            site = await site_admin.create_site(
                tenant, data.name, data.domain, data.hosts(), data.timezone, data.visitor_mode
            )
        except InvalidSite as exc:
            return _new_form(tenant, data, {exc.field: exc.reason}, status_code=400)
        return Redirect(f"/sites/{site.id}/install", status_code=303)

    @get("/{site_id:str}/settings")
    async def settings(
        self,
        site_id: FromPath[str],
        tenant: NamedDependency[TenantScope],
        site_admin: NamedDependency[SiteAdmin],
        saved: FromQuery[bool] = False,
    ) -> Template:
        site = await site_admin.site(tenant, site_id)
        return _settings_form(tenant, site, SiteForm.of(site), {}, saved=saved)

    @post("/{site_id:str}/settings")
    async def save_settings(
        self,
        site_id: FromPath[str],
        data: Annotated[SiteForm, FormBody],
        tenant: NamedDependency[TenantScope],
        site_admin: NamedDependency[SiteAdmin],
    ) -> Template | Redirect:
        try:
            site = await site_admin.update_site(
                tenant,
                site_id,
                name=data.name,
                domain=data.domain,
                allowed_hosts=data.hosts(),
                timezone=data.timezone,
                visitor_mode=data.visitor_mode,
            )
        except InvalidSite as exc:
            site = await site_admin.site(tenant, site_id)
            return _settings_form(tenant, site, data, {exc.field: exc.reason}, status_code=400)
        return Redirect(f"/sites/{site.id}/settings?saved=true", status_code=303)

    @post("/{site_id:str}/disable")
    async def disable(
        self,
        site_id: FromPath[str],
        tenant: NamedDependency[TenantScope],
        site_admin: NamedDependency[SiteAdmin],
    ) -> Redirect:
        site = await site_admin.update_site(tenant, site_id, disabled=True)
        return Redirect(f"/sites/{site.id}/settings", status_code=303)

    @post("/{site_id:str}/enable")
    async def enable(
        self,
        site_id: FromPath[str],
        tenant: NamedDependency[TenantScope],
        site_admin: NamedDependency[SiteAdmin],
    ) -> Redirect:
        site = await site_admin.update_site(tenant, site_id, disabled=False)
        return Redirect(f"/sites/{site.id}/settings", status_code=303)

    @get("/{site_id:str}/install")
    async def install(
        self,
        site_id: FromPath[str],
        tenant: NamedDependency[TenantScope],
        site_admin: NamedDependency[SiteAdmin],
        stats: NamedDependency[StatsService],
        settings: NamedDependency[Settings],
    ) -> Template:
        site = await site_admin.site(tenant, site_id)
        tracker = load_tracker(settings.tracker_path)
        return Template(
            "site_install.html",
            context={
                "site": site,
                "tenant": tenant,
                "can_write": _can_write(tenant),
                "tab": "install",
                "snippets": snippets(tracker, settings.collector_url, site.id, site.visitor_mode),
                "integrity": tracker.integrity,
                "received": await _received(stats, tenant, site),
            },
        )

    @get("/{site_id:str}/install/status")
    async def install_status(
        self,
        site_id: FromPath[str],
        tenant: NamedDependency[TenantScope],
        stats: NamedDependency[StatsService],
    ) -> dict[str, bool]:
        """Asked by the install page once its live stream is open, so no event falls between the two."""
        site = await stats.site(tenant, site_id)
        return {"received": await stats.has_events(tenant, site)}


async def _received(stats: StatsService, tenant: TenantScope, site: Site) -> bool:
    try:
        return await stats.has_events(tenant, site)
    except WarehouseUnavailable:
        # The snippet matters more than the check: the page waits, and asks again once it can.
        return False


def _can_write(tenant: TenantScope) -> bool:
    return "sites:write" in tenant.permissions


def _new_form(
    tenant: TenantScope,
    form: SiteForm,
    errors: dict[str, str],
    *,
    guess_zone: bool = False,
    status_code: int = 200,
) -> Template:
    """`guess_zone`: a blank form, whose time zone the browser may preset to its own."""
    return Template(
        "site_new.html",
        context={
            "tenant": tenant,
            "form": form,
            "errors": errors,
            "time_zones": time_zones(),
            "can_write": True,
            "guess_zone": guess_zone,
        },
        status_code=status_code,
    )


def _settings_form(
    tenant: TenantScope,
    site: Site,
    form: SiteForm,
    errors: dict[str, str],
    *,
    saved: bool = False,
    status_code: int = 200,
) -> Template:
    return Template(
        "site_settings.html",
        context={
            "tenant": tenant,
            "site": site,
            "form": form,
            "errors": errors,
            "saved": saved,
            "time_zones": time_zones(),
            "can_write": _can_write(tenant),
            "tab": "settings",
        },
        status_code=status_code,
    )
