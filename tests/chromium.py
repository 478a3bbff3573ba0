"""One headless Chromium for the browser tests (pytest plugin, see conftest.py)."""

from __future__ import annotations

import shutil
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from playwright.async_api import Browser, async_playwright

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMIUM_ARGS = [
    # Without these, Chromium reaches for Google's services on a closed network and stalls.
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    # Test pages pose as public sites (shop.test, elsewhere.test) served from loopback.
    "--host-resolver-rules=MAP *.test 127.0.0.1",
]
# Playwright turns the back/forward cache off; the tracker tests restore pages from it.
ENABLED_DEFAULTS = ["--disable-back-forward-cache"]


@pytest.fixture(scope="session")
async def browser() -> AsyncIterator[Browser]:
    if not Path(CHROMIUM).exists():  # noqa: ASYNC240 - once per session, before any I/O matters
        pytest.fail("Chromium is missing: the test command installs Debian's chromium package (make test)")
    async with async_playwright() as playwright:
        launched = await playwright.chromium.launch(
            executable_path=CHROMIUM, args=CHROMIUM_ARGS, ignore_default_args=ENABLED_DEFAULTS
        )
        yield launched
        await launched.close()
