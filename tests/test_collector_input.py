"""Bad input gets a clear 4xx naming the reason, and nothing reaches Kafka."""

from __future__ import annotations

import httpx
import pytest

from stack import Stack
from visitor import BROWSER

VALID_URL = "https://shop.example/"


@pytest.fixture
async def site(stack: Stack) -> str:
    return (await stack.tenant("Input")).site.id


async def _post(stack: Stack, path: str, body: bytes | str) -> httpx.Response:
    async with httpx.AsyncClient(base_url=stack.collector, headers=BROWSER) as client:
        return await client.post(path, content=body, headers={"content-type": "text/plain"})


@pytest.mark.parametrize(
    ("body", "status", "reason", "field"),
    [
        ('{"s": "SITE", "u": ', 400, "not valid JSON", "$"),
        ("not json at all", 400, "not valid JSON", "$"),
        ('{"s": "SITE", "u": 42}', 400, "Expected `str`, got `int`", "$.u"),
        ('{"s": "SITE", "u": "https://x.example/", "w": "wide"}', 400, "Expected `int`", "$.w"),
        ('{"u": "https://x.example/"}', 400, "missing required field `s`", "$"),
        ('{"s": "", "u": "https://x.example/"}', 400, "length >= 1", "$.s"),
        ('{"s": "SITE", "u": "javascript:alert(1)"}', 400, "absolute http(s) URL", "$.u"),
        ('{"s": "SITE", "u": "http://["}', 400, "absolute http(s) URL", "$.u"),
        ('{"s": "SITE", "u": "http://[zz]/"}', 400, "absolute http(s) URL", "$.u"),
        ('{"s": "SITE", "u": "http://a\uff03b/"}', 400, "absolute http(s) URL", "$.u"),
        ('{"s": "SITE", "u": "https://x.example/", "extra": 1}', 400, "unknown field `extra`", "$"),
        ('{"s": "SITE", "u": "https://x.example/", "p": {"k": 1}}', 400, "Expected `str`", "$.p[...]"),
        ('{"s": "no-such-site", "u": "https://x.example/"}', 404, "unknown site key", "$.s"),
        ("[1, 2]", 400, "Expected `object`", "$"),
        ('{"s": "SITE", "u": "https://x.example/", "e": -1}', 400, "Expected `int` >= 0", "$.e"),
        ('{"s": "SITE", "u": "https://x.example/", "e": 86400001}', 400, "<= 86400000", "$.e"),
        ('{"s": "SITE", "u": "https://x.example/", "e": 1.5}', 400, "Expected `int`", "$.e"),
        ('{"s": "SITE", "u": "https://x.example/", "i": ""}', 400, "length >= 1", "$.i"),
        ('{"s": "SITE", "u": "https://x.example/", "i": "' + "7" * 33 + '"}', 400, "length <= 32", "$.i"),
        ('{"s": "SITE", "u": "https://x.example/", "i": "a b"}', 400, "matching regex", "$.i"),
        ('{"s": "SITE", "u": "https://x.example/", "i": 42}', 400, "Expected `str | null`", "$.i"),
    ],
)
async def test_invalid_single_event_is_refused_with_reason(
    stack: Stack, site: str, body: str, status: int, reason: str, field: str
) -> None:
    before = await stack.raw_end_offsets()
    response = await _post(stack, "/api/event", body.replace("SITE", site))
    assert response.status_code == status, response.text
    assert reason in response.json()["error"]
    assert response.json()["field"] == field
    assert await stack.raw_end_offsets() == before


async def test_batch_with_one_bad_event_writes_none_of_it(stack: Stack, site: str) -> None:
    good = f'{{"s": "{site}", "u": "{VALID_URL}"}}'
    body = f'[{good}, {good}, {{"s": "{site}", "u": 7}}]'
    before = await stack.raw_end_offsets()
    response = await _post(stack, "/api/events", body)
    assert response.status_code == 400
    assert response.json()["field"] == "$[2].u"
    assert await stack.raw_end_offsets() == before


async def test_batch_over_the_limit_is_refused(stack: Stack, site: str) -> None:
    limit = stack.settings.max_batch_events
    event = f'{{"s": "{site}", "u": "{VALID_URL}"}}'
    response = await _post(stack, "/api/events", "[" + ",".join([event] * (limit + 1)) + "]")
    assert response.status_code == 400
    assert f"at most {limit} events" in response.json()["error"]


async def test_empty_batch_is_refused(stack: Stack) -> None:
    response = await _post(stack, "/api/events", "[]")
    assert response.status_code == 400
    assert "at least one event" in response.json()["error"]


async def test_oversize_body_is_refused_with_413(stack: Stack, site: str) -> None:
    before = await stack.raw_end_offsets()
    padding = "x" * stack.settings.max_body_bytes
    response = await _post(stack, "/api/event", f'{{"s": "{site}", "u": "{VALID_URL}?{padding}"}}')
    assert response.status_code == 413
    assert "error" in response.json()
    assert await stack.raw_end_offsets() == before


async def test_valid_event_is_accepted_from_any_origin_without_preflight(stack: Stack, site: str) -> None:
    async with httpx.AsyncClient(base_url=stack.collector, headers=BROWSER) as client:
        response = await client.post(
            "/api/event",
            content=f'{{"s": "{site}", "u": "{VALID_URL}"}}',
            headers={"content-type": "text/plain", "origin": "https://shop.example"},
        )
    assert response.status_code == 202
    assert response.json() == {"accepted": 1}
    assert response.headers["access-control-allow-origin"] == "*"


async def test_tracker_script_is_served_with_etag(stack: Stack) -> None:
    async with httpx.AsyncClient(base_url=stack.collector, headers=BROWSER) as client:
        first = await client.get("/p.js")
        again = await client.get("/p.js", headers={"if-none-match": first.headers["etag"]})
        plain = await client.get("/p.js", headers={"accept-encoding": "identity"})
    assert first.status_code == 200
    assert "javascript" in first.headers["content-type"]
    assert first.headers["content-encoding"] == "gzip"
    assert first.content == plain.content == stack.settings.tracker_path.read_bytes()
    assert "content-encoding" not in plain.headers
    assert plain.headers["etag"] != first.headers["etag"]
    assert again.status_code == 304


async def test_engagement_and_first_party_visitor_id_are_accepted(stack: Stack, site: str) -> None:
    body = (
        f'{{"s": "{site}", "u": "{VALID_URL}", "n": "engagement", "e": 86400000, "i": "0.8154139211429512"}}'
    )
    response = await _post(stack, "/api/event", body)
    assert response.status_code == 202, response.text
