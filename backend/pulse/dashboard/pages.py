"""Server-rendered pages: login, sites with their snippets, and the site overview."""

from __future__ import annotations

from typing import Annotated

import msgspec
from litestar import Controller, Request, get, post
from litestar.datastructures import Cookie, State
from litestar.di import NamedDependency, Provide
from litestar.enums import RequestEncodingType
from litestar.params import Body, FromPath, FromQuery
from litestar.response import Redirect, Template

from pulse.auth.tokens import TokenService
from pulse.dashboard.live_figures import LiveSource
from pulse.dashboard.rate_limit import LoginThrottle
from pulse.dashboard.session import SESSION_COOKIE, page_scope
from pulse.dashboard.sites import TenantSites
from pulse.oltp.accounts import Accounts
from pulse.settings import Settings
from pulse.stats.periods import PERIODS, PeriodName, resolve_period
from pulse.stats.service import StatsService
from pulse.tenancy import TenantScope
from pulse.tracker_asset import load_tracker, snippets


class LoginForm(msgspec.Struct, frozen=True):
    email: Annotated[str, msgspec.Meta(max_length=254)] = ""
    password: Annotated[str, msgspec.Meta(max_length=1024)] = ""


class AuthPages(Controller):
    @get("/", include_in_schema=False)
    async def home(self) -> Redirect:
        return Redirect("/sites")

    @get("/login", include_in_schema=False)
    async def login_form(self) -> Template:
        return Template("login.html", context={"error": None})

    @post("/login", include_in_schema=False)
    async def login(
        self,
        request: Request[None, None, State],
        data: Annotated[LoginForm, Body(media_type=RequestEncodingType.URL_ENCODED)],
        accounts: NamedDependency[Accounts],
        tokens: NamedDependency[TokenService],
        settings: NamedDependency[Settings],
        login_throttle: NamedDependency[LoginThrottle],
    ) -> Template | Redirect:
        wait = login_throttle.wait_s(request)
        if wait:
            return Template(
                "login.html",
                context={"error": f"Too many attempts. Try again in {wait} seconds.", "email": data.email},
                status_code=429,
                headers={"Retry-After": str(wait)},
            )
        member = await accounts.authenticate(data.email, data.password)
        if member is None:
            return Template(
                "login.html",
                context={"error": "Wrong email or password.", "email": data.email},
                status_code=401,
            )
        cookie = Cookie(
            key=SESSION_COOKIE,
            value=(await tokens.issue_user(member)).token,
            httponly=True,
            samesite="lax",
            secure=settings.cookie_secure,
            max_age=settings.jwt_ttl_s,
            path="/",
        )
        return Redirect("/sites", cookies=[cookie], status_code=303)

    @post("/logout", include_in_schema=False)
    async def logout(self) -> Redirect:
        return Redirect(
            "/login", cookies=[Cookie(key=SESSION_COOKIE, value="", max_age=0, path="/")], status_code=303
        )


class SitePages(Controller):
    path = "/sites"
    dependencies = {"tenant": Provide(page_scope)}
    include_in_schema = False

    @get("/")
    async def sites(
        self,
        tenant: NamedDependency[TenantScope],
        tenant_sites: NamedDependency[TenantSites],
        settings: NamedDependency[Settings],
    ) -> Template:
        listed = await tenant_sites.list(tenant)
        tracker = load_tracker(settings.tracker_path)
        return Template(
            "sites.html",
            context={
                "sites": listed,
                "snippets": {s.id: snippets(tracker, settings.collector_url, s.id) for s in listed},
                "tenant": tenant,
            },
        )

    @get("/{site_id:str}")
    async def overview(
        self,
        request: Request[None, None, State],
        site_id: FromPath[str],
        tenant: NamedDependency[TenantScope],
        stats: NamedDependency[StatsService],
        live: NamedDependency[LiveSource],
        period: FromQuery[PeriodName] = "24h",
    ) -> Template:
        site = await stats.site(tenant, site_id)
        resolved = resolve_period(period)
        series = await stats.timeseries(tenant, site, resolved)
        context = {
            "site": site,
            "tenant": tenant,
            "period": period,
            "periods": PERIODS,
            "aggregate": await stats.aggregate(tenant, site, resolved),
            "series": series,
            "chart": {
                "t": [int(p.t.timestamp()) for p in series.points],
                "visitors": [p.visitors for p in series.points],
                "pageviews": [p.pageviews for p in series.points],
            },
            "live": await live.figures(tenant, site_id),
        }
        partial = request.headers.get("hx-request") == "true"
        return Template("_overview_panel.html" if partial else "overview.html", context=context)
