"""Goals: a site's conversions, a pageview path pattern or a custom event name."""

from __future__ import annotations

from typing import Literal

import msgspec

GoalKind = Literal["page", "event"]


class Goal(msgspec.Struct, frozen=True, kw_only=True):
    id: str
    tenant_id: str
    site_id: str
    name: str
    kind: GoalKind
    # kind "page": a path where * matches any run of characters (/blog/*); kind "event": an event name.
    pattern: str
    created_at: int
