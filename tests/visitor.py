"""What a real visitor's browser sends: the collector drops scripts and headless browsers as bots."""

from __future__ import annotations

USER_AGENT = (
    "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36"
)
BROWSER = {"user-agent": USER_AGENT}
