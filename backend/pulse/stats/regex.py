"""Regular expressions as ClickHouse's match() reads them: RE2, which Python's re is not.

RE2 has no lookaround and no backreferences, which re would accept; a pattern is checked
here so that a client hears which one is wrong, instead of the query failing in ClickHouse.
"""

from __future__ import annotations

import functools

import re2

_OPTIONS = re2.Options()
# The library logs every refused pattern to stderr; the refusal is the client's answer instead.
_OPTIONS.log_errors = False


@functools.lru_cache(maxsize=1024)
def problem(pattern: str) -> str | None:
    """Why RE2 refuses the pattern; None when it compiles."""
    try:
        re2.compile(pattern, _OPTIONS)
    except re2.error as exc:
        reason = exc.args[0] if exc.args else exc
        return reason.decode(errors="replace") if isinstance(reason, bytes) else str(reason)
    return None


def search(pattern: str, text: str) -> bool:
    """Whether the pattern matches somewhere in the text, as match(text, pattern) in ClickHouse."""
    return re2.compile(pattern, _OPTIONS).search(text) is not None
