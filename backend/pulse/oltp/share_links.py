"""Public share links: a read-only dashboard of one site for whoever holds the link's URL.

The URL carries a token of 32 random bytes; only its SHA-256 is kept (as for API keys: a slow KDF
guards guessable passwords, and 256 random bits cannot be guessed either way). A link may also
ask for a password, kept as an argon2id hash. Revoking a link is final: its token opens nothing.
"""

from __future__ import annotations

import asyncio
import builtins
import re
import secrets
import time
import uuid
from collections.abc import Callable
from typing import Any

import msgspec
from sqlalchemy import (
    BigInteger,
    Column,
    MetaData,
    Row,
    Table,
    Text,
    and_,
    func,
    insert,
    literal,
    select,
    update,
)
from sqlalchemy.ext.asyncio import AsyncEngine

from pulse.oltp.accounts import MAX_PASSWORD_LENGTH, MIN_PASSWORD_LENGTH, SITES, FieldRefused, tenant_has_site
from pulse.oltp.goals import UnknownSite
from pulse.oltp.passwords import hash_password, verify_password
from pulse.oltp.text_checks import line_refusal, secret_digest

TOKEN_BYTES = 32
MAX_LABEL_LENGTH = 100
# Live links of one site; each is a way in, so hundreds would be a mistake nobody can review.
MAX_LINKS_PER_SITE = 50

_HEX_ID = re.compile("[0-9a-f]{32}")
# secrets.token_urlsafe(32): 43 characters of the URL-safe base64 alphabet.
_TOKEN = re.compile("[A-Za-z0-9_-]{43}")


class ShareLink(msgspec.Struct, frozen=True, kw_only=True):
    id: str
    tenant_id: str
    site_id: str
    label: str
    # Whether opening the link asks for a password.
    protected: bool
    created_at: int
    revoked_at: int | None = None


class OpenLink(msgspec.Struct, frozen=True, kw_only=True):
    """What a live token opens."""

    link: ShareLink
    # Changes whenever the password does ("" without one): an unlock proof names it, so a proof
    # made for one password does not open the link after it changes.
    lock: str


class InvalidShareLink(FieldRefused):
    """A link refused, naming the field (label or password) at fault."""


_links = Table(
    "share_links",
    MetaData(),
    Column("id", Text, primary_key=True),
    Column("tenant_id", Text),
    Column("site_id", Text),
    Column("token_hash", Text),
    Column("password_hash", Text),
    Column("label", Text),
    Column("created_at", BigInteger),
    Column("revoked_at", BigInteger),
)
# Every read names its columns: the hashes never leave this module.
_PUBLIC = (
    _links.c.id,
    _links.c.tenant_id,
    _links.c.site_id,
    _links.c.label,
    (_links.c.password_hash.is_not(None)).label("protected"),
    _links.c.created_at,
    _links.c.revoked_at,
)


class ShareLinks:
    """Managing reads and writes are scoped by tenant and site; only `open` goes by token alone."""

    def __init__(self, engine: AsyncEngine, clock: Callable[[], float] = time.time) -> None:
        self._engine = engine
        self._clock = clock

    def _now_ms(self) -> int:
        return int(self._clock() * 1000)

    async def create(
        self, tenant_id: str, site_id: str, label: str, password: str = ""
    ) -> tuple[ShareLink, str]:
        """The new link and its token, which is not kept and cannot be shown again.

        An empty password makes a link that opens without one.
        """
        link = ShareLink(
            id=uuid.uuid4().hex,
            tenant_id=tenant_id,
            site_id=site_id,
            label=checked_label(label),
            protected=bool(password),
            created_at=self._now_ms(),
        )
        password_hash = (
            await asyncio.to_thread(hash_password, checked_password(password)) if password else None
        )
        if not _HEX_ID.fullmatch(tenant_id):
            raise UnknownSite(site_id)
        token = secrets.token_urlsafe(TOKEN_BYTES)
        values = {
            "id": link.id,
            "tenant_id": tenant_id,
            "site_id": site_id,
            "token_hash": secret_digest(token),
            "password_hash": password_hash,
            "label": link.label,
            "created_at": link.created_at,
        }
        live_links = (
            select(func.count())
            .select_from(_links)
            .where(_links.c.site_id == site_id, _links.c.revoked_at.is_(None))
            .scalar_subquery()
        )
        # One statement that inserts only for the tenant's own site and below the limit, as
        # pulse.oltp.goals does: no check made beforehand can be overtaken by a concurrent request.
        source = select(
            *(literal(value, _links.c[key].type).label(key) for key, value in values.items())
        ).where(
            select(SITES.c.id).where(and_(SITES.c.id == site_id, SITES.c.tenant_id == tenant_id)).exists(),
            live_links < MAX_LINKS_PER_SITE,
        )
        async with self._engine.begin() as conn:
            result = await conn.execute(insert(_links).from_select(list(values), source))
        if result.rowcount == 0:
            if await tenant_has_site(self._engine, tenant_id, site_id):
                raise InvalidShareLink(
                    "label", f"a site may have at most {MAX_LINKS_PER_SITE} live share links"
                )
            raise UnknownSite(site_id)
        return link, token

    async def list(self, tenant_id: str, site_id: str) -> builtins.list[ShareLink]:
        """The site's links, revoked ones included, newest first."""
        if not _HEX_ID.fullmatch(tenant_id):
            return []
        query = (
            select(*_PUBLIC)
            .where(_links.c.tenant_id == tenant_id, _links.c.site_id == site_id)
            .order_by(_links.c.created_at.desc(), _links.c.id)
        )
        async with self._engine.connect() as conn:
            return [_link(row) for row in await conn.execute(query)]

    async def revoke(self, tenant_id: str, site_id: str, link_id: str) -> bool:
        """False when the site has no such link; revoking again keeps the first revocation time."""
        if not (_HEX_ID.fullmatch(link_id) and _HEX_ID.fullmatch(tenant_id)):
            return False
        mine = and_(_links.c.id == link_id, _links.c.tenant_id == tenant_id, _links.c.site_id == site_id)
        async with self._engine.begin() as conn:
            await conn.execute(
                update(_links).where(mine, _links.c.revoked_at.is_(None)).values(revoked_at=self._now_ms())
            )
            found = (await conn.execute(select(_links.c.id).where(mine))).first()
        return found is not None

    async def open(self, token: str) -> OpenLink | None:
        """The live link this token opens; None for an unknown or revoked token, or while its site
        is disabled (a site taken down is taken down for the public too).

        The link's site must still be its tenant's: a row can never open another tenant's site.
        """
        if not _TOKEN.fullmatch(token):
            return None
        query = (
            select(*_PUBLIC, _links.c.password_hash)
            .select_from(
                _links.join(
                    SITES, and_(SITES.c.id == _links.c.site_id, SITES.c.tenant_id == _links.c.tenant_id)
                )
            )
            .where(
                _links.c.token_hash == secret_digest(token),
                _links.c.revoked_at.is_(None),
                SITES.c.disabled == 0,
            )
        )
        async with self._engine.connect() as conn:
            row = (await conn.execute(query)).first()
        if row is None:
            return None
        lock = "" if row.password_hash is None else secret_digest(row.password_hash)
        return OpenLink(link=_link(row), lock=lock)

    async def unlock(self, link: ShareLink, password: str) -> bool:
        """Whether this is the link's password (always true for a link without one)."""
        if not link.protected:
            return True
        query = select(_links.c.password_hash).where(
            _links.c.id == link.id, _links.c.tenant_id == link.tenant_id, _links.c.revoked_at.is_(None)
        )
        async with self._engine.connect() as conn:
            password_hash = (await conn.execute(query)).scalar()
        if not password_hash or len(password) > MAX_PASSWORD_LENGTH:
            return False
        return await asyncio.to_thread(verify_password, password_hash, password)


def checked_label(label: str) -> str:
    label = label.strip()
    if (reason := line_refusal(label, MAX_LABEL_LENGTH)) is not None:
        raise InvalidShareLink("label", reason)
    return label


def checked_password(password: str) -> str:
    if len(password) < MIN_PASSWORD_LENGTH:
        raise InvalidShareLink(
            "password", f"must be at least {MIN_PASSWORD_LENGTH} characters (or empty for none)"
        )
    if len(password) > MAX_PASSWORD_LENGTH:
        raise InvalidShareLink("password", f"must be at most {MAX_PASSWORD_LENGTH} characters")
    return password


def _link(row: Row[*tuple[Any, ...]]) -> ShareLink:
    return ShareLink(
        id=row.id,
        tenant_id=row.tenant_id,
        site_id=row.site_id,
        label=row.label,
        protected=bool(row.protected),
        created_at=row.created_at,
        revoked_at=row.revoked_at,
    )
