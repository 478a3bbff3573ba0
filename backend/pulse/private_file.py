"""Secrets generated once per installation and kept in PULSE_HOME, readable by the owner only."""

from __future__ import annotations

import os
import secrets
from pathlib import Path


def read_or_create_token(path: Path, nbytes: int) -> str:
    """Concurrent first runs agree on one value: the file is created exclusively."""
    if path.exists():
        return path.read_text().strip()
    path.parent.mkdir(parents=True, exist_ok=True)
    token = secrets.token_urlsafe(nbytes)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return path.read_text().strip()
    with os.fdopen(fd, "w") as fh:
        fh.write(token)
    return token
