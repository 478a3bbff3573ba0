"""Refusals on the dashboard's pages answered as pages: a person reads them, not a program.

The JSON handlers in pulse.dashboard.app serve the API; page controllers take `PAGE_ERRORS`.
"""

from __future__ import annotations

from typing import Any

from litestar import Request
from litestar.datastructures import State
from litestar.response import Template
from litestar.types import ExceptionHandlersMap

from pulse.dashboard.site_admin import GoalNotFound
from pulse.stats.service import SiteNotFound
from pulse.tenancy import Forbidden


class ShareNotFound(Exception):
    """An unknown or revoked share token: the two are told apart to nobody."""


def _forbidden(_: Request[Any, Any, State], exc: Forbidden) -> Template:
    return Template(
        "forbidden.html",
        context={"permission": exc.permission, "role": exc.role},
        status_code=403,
    )


def _not_found(_: Request[Any, Any, State], __: Exception) -> Template:
    return Template("not_found.html", context={"what": "page"}, status_code=404)


def _share_not_found(_: Request[Any, Any, State], __: ShareNotFound) -> Template:
    # `share` keeps the page free of links into the dashboard.
    return Template("not_found.html", context={"what": "share link", "share": True}, status_code=404)


PAGE_ERRORS: ExceptionHandlersMap = {
    Forbidden: _forbidden,
    SiteNotFound: _not_found,
    GoalNotFound: _not_found,
    ShareNotFound: _share_not_found,
}
