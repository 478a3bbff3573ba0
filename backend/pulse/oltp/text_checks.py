"""What every OLTP store checks of the text and secrets it keeps."""

from __future__ import annotations

import hashlib
import unicodedata


def has_control_characters(value: str) -> bool:
    return any(unicodedata.category(c) == "Cc" for c in value)


def secret_digest(secret: str) -> str:
    """How a bearer secret (API key, share or invitation token) is stored and looked up: its SHA-256.
    The secrets are 32 random bytes, so a fast hash is enough; a slow one would only slow lookups."""
    return hashlib.sha256(secret.encode()).hexdigest()
