"""The tenant scope every analytics read is built through.

A `TenantScope` is made only from verified credentials (see pulse.auth); the readers in
pulse.warehouse and pulse.live take one as their first argument and take the tenant id
from it, never from a caller's parameters.
"""

from __future__ import annotations

from typing import Literal

import msgspec

Role = Literal["owner", "admin", "viewer"]


class TenantScope(msgspec.Struct, frozen=True):
    tenant_id: str
    role: Role
    subject: str
