"""What every OLTP store checks of the text and secrets it keeps."""

from __future__ import annotations

import hashlib
import unicodedata


def has_control_characters(value: str) -> bool:
    return any(unicodedata.category(c) == "Cc" for c in value)


def line_refusal(value: str, max_length: int) -> str | None:
    """Why a one-line name or label (already stripped) cannot be kept, or None: empty, too long,
    or holding control characters."""
    if not value:
        return "must not be empty"
    if len(value) > max_length:
        return f"must be at most {max_length} characters"
    if has_control_characters(value):
        return "must not contain control characters"
    return None


def secret_digest(secret: str) -> str:
    """How a bearer secret (API key, share or invitation token) is stored and looked up: its SHA-256.
    The secrets are 32 random bytes, so a fast hash is enough; a slow one would only slow lookups."""
    return hashlib.sha256(secret.encode()).hexdigest()
