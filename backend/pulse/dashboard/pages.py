"""Server-rendered pages: login and logout (the sites pages are in pulse.dashboard.site_pages)."""

from __future__ import annotations

from typing import Annotated

import msgspec
from litestar import Controller, Request, get, post
from litestar.datastructures import Cookie, State
from litestar.di import NamedDependency
from litestar.enums import RequestEncodingType
from litestar.params import Body
from litestar.response import Redirect, Template

from pulse.auth.tokens import TokenService
from pulse.dashboard.rate_limit import LoginThrottle
from pulse.dashboard.session import SESSION_COOKIE, session_cookie
from pulse.oltp.accounts import Accounts
from pulse.settings import Settings


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
        cookie = session_cookie((await tokens.issue_user(member)).token, settings)
        return Redirect("/sites", cookies=[cookie], status_code=303)

    @post("/logout", include_in_schema=False)
    async def logout(self) -> Redirect:
        return Redirect(
            "/login", cookies=[Cookie(key=SESSION_COOKIE, value="", max_age=0, path="/")], status_code=303
        )
