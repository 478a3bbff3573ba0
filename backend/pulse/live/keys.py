"""Redis key layout for the live layer. Every key carries tenant and site and a TTL."""

from __future__ import annotations

ACTIVE_WINDOW_S = 300
SECONDS_TTL_S = 3600
TICK_PATTERN = "pulse:tick:*"


def seconds_key(tenant_id: str, site_id: str, minute: int) -> str:
    return f"pulse:{tenant_id}:{site_id}:sec:{minute}"


def active_key(tenant_id: str, site_id: str) -> str:
    return f"pulse:{tenant_id}:{site_id}:active"


def tick_channel(tenant_id: str, site_id: str) -> str:
    return f"pulse:tick:{tenant_id}:{site_id}"


def recent_key(tenant_id: str, site_id: str) -> str:
    """The site's latest events as shown by the live view, newest first."""
    return f"pulse:{tenant_id}:{site_id}:recent"


def visit_key(tenant_id: str, site_id: str, visitor_id: int) -> str:
    """The visitor's current session, read and written by the rollup worker."""
    return f"pulse:{tenant_id}:{site_id}:visit:{visitor_id}"
