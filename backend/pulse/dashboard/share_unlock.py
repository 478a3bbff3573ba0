"""Proof that a browser gave a share link's password, kept in a cookie scoped to that link's path.

The proof is `<expiry>.<HMAC-SHA256>` over the link id, the expiry and the link's lock (which
changes with its password), under a key derived from the secret key: it cannot be forged, moved to
another link, or kept working past its expiry or a password change. Revoking the link ends it too,
since a revoked token opens nothing.
"""

from __future__ import annotations

import hashlib
import hmac
import time
from collections.abc import Callable

from litestar.datastructures import Cookie

from pulse.oltp.share_links import OpenLink

UNLOCK_COOKIE = "pulse_share"
# How long a browser stays let in before the password is asked again.
UNLOCK_TTL_S = 7 * 24 * 3600


class ShareUnlock:
    def __init__(self, secret_key: str, cookie_secure: bool, clock: Callable[[], float] = time.time) -> None:
        self._key = hashlib.sha256(f"share-unlock:{secret_key}".encode()).digest()
        self._secure = cookie_secure
        self._clock = clock

    def cookie(self, opened: OpenLink, token: str) -> Cookie:
        expires = int(self._clock()) + UNLOCK_TTL_S
        return Cookie(
            key=UNLOCK_COOKIE,
            value=f"{expires}.{self._mac(opened, expires)}",
            # Sent only under this link's own URLs: another link, or the dashboard, never sees it.
            path=share_path(token),
            httponly=True,
            # Lax, not strict: a link opened from a mail or a chat message is a cross-site navigation.
            samesite="lax",
            secure=self._secure,
            max_age=UNLOCK_TTL_S,
        )

    def admits(self, opened: OpenLink, proof: str | None) -> bool:
        """Whether the browser may see the link's dashboard: it needs no password, or proved it."""
        if not opened.link.protected:
            return True
        if not proof:
            return False
        expires_text, _, mac = proof.partition(".")
        if not expires_text.isdigit() or len(expires_text) > 12:
            return False
        expires = int(expires_text)
        return expires > self._clock() and hmac.compare_digest(mac, self._mac(opened, expires))

    def _mac(self, opened: OpenLink, expires: int) -> str:
        message = f"{opened.link.id}|{expires}|{opened.lock}".encode()
        return hmac.new(self._key, message, hashlib.sha256).hexdigest()


def share_path(token: str) -> str:
    return f"/share/{token}"
