"""The demo tenant, user and site a first `pulse up` creates, so a new user can log in at once."""

from __future__ import annotations

from pathlib import Path

import msgspec

from pulse.oltp.accounts import Accounts, Site
from pulse.private_file import read_or_create_token

DEMO_EMAIL = "demo@pulse.local"


class DemoLogin(msgspec.Struct, frozen=True):
    email: str
    password: str
    tenant_id: str
    sites: list[Site]


async def ensure_demo(accounts: Accounts, home: Path) -> DemoLogin:
    # Generated once per PULSE_HOME, so every run prints the same login.
    password = read_or_create_token(home / "demo-password.txt", 12)
    member = await accounts.find_user_by_email(DEMO_EMAIL)
    if member is None:
        tenant = await accounts.create_tenant("Demo")
        member = await accounts.create_user(DEMO_EMAIL, password, tenant.id, "owner")
    sites = await accounts.list_sites(member.tenant_id)
    if not sites:
        sites = [
            await accounts.create_site(member.tenant_id, "Demo shop", "shop.example"),
            await accounts.create_site(member.tenant_id, "Demo blog", "blog.example"),
        ]
    return DemoLogin(email=DEMO_EMAIL, password=password, tenant_id=member.tenant_id, sites=sites)
