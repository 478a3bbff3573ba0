"""A logged-in dashboard client, going through the real login form and its CSRF token."""

from __future__ import annotations

import re

import httpx

CSRF_FIELD = re.compile(r'name="_csrf_token" value="([^"]+)"')


async def login(client: httpx.AsyncClient, email: str, password: str) -> httpx.Response:
    form = await client.get("/login")
    match = CSRF_FIELD.search(form.text)
    assert match, "login form carries a CSRF token"
    return await client.post(
        "/login", data={"email": email, "password": password, "_csrf_token": match.group(1)}
    )
