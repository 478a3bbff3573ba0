"""The tenant scope every analytics read is built through, and what it may do.

A `TenantScope` is made only from verified credentials (see pulse.auth); the readers in
pulse.warehouse and pulse.live take one as their first argument and take the tenant id
from it, never from a caller's parameters.

What a scope may do is a set of `Permission`s: a user's follow from their role, an API key's
are the ones it was created with. Handlers ask `scope.require(...)`, never the role itself.
"""

from __future__ import annotations

from typing import Literal, get_args

import msgspec

Role = Literal["owner", "admin", "viewer"]
Permission = Literal["stats:read", "events:write", "sites:write", "members:write"]
PERMISSIONS: tuple[Permission, ...] = get_args(Permission)
# What an API key may hold: who belongs to a team is changed by signed-in people only.
KEY_PERMISSIONS: tuple[Permission, ...] = ("stats:read", "events:write", "sites:write")

ROLE_PERMISSIONS: dict[Role, frozenset[Permission]] = {
    "owner": frozenset(PERMISSIONS),
    "admin": frozenset(PERMISSIONS),
    "viewer": frozenset({"stats:read"}),
}


class Forbidden(Exception):
    """The credentials are valid, but do not allow this; answered with 403 and the missing permission."""

    def __init__(self, permission: Permission, role: Role | None = None) -> None:
        super().__init__(f"this needs the {permission} permission")
        self.permission = permission
        # The refused user's role, for pages to say why; None for an API key.
        self.role = role


class TenantScope(msgspec.Struct, frozen=True, kw_only=True):
    tenant_id: str
    # Who: a user id, or an API key's id.
    subject: str
    permissions: frozenset[Permission]
    # The user's role in the tenant; None for an API key.
    role: Role | None = None

    @classmethod
    def of_user(cls, tenant_id: str, user_id: str, role: Role) -> TenantScope:
        return cls(tenant_id=tenant_id, subject=user_id, permissions=ROLE_PERMISSIONS[role], role=role)

    def require(self, permission: Permission) -> None:
        if permission not in self.permissions:
            raise Forbidden(permission, self.role)
