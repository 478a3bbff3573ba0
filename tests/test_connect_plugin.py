"""The Redpanda Connect plugins, driven through their real gRPC plugin protocol.

`pulse_ingest` turns server-side events and access-log lines into the collector's events, with
the collector's own checks; its records, produced to events.raw as the pipeline's Kafka output
produces them, are counted by the real rollups. `pulse_export` turns them into archive lines.
"""

from __future__ import annotations

import subprocess
import sys
from datetime import UTC, datetime, timedelta

import msgspec
import pytest
from aiokafka import AIOKafkaProducer

from connect_plugin import PluginError, running_plugin
from pulse.events.message import EventV1, decode, encode, partition_key
from pulse.kafka.partitioning import keyed_partitioner
from stack import Stack
from visitor import USER_AGENT


def _env(stack: Stack) -> dict[str, str]:
    return {"PULSE_HOME": str(stack.settings.home)}


def _event(site: str, **fields: object) -> bytes:
    return msgspec.json.encode(
        {"site": site, "url": "https://shop.example/pricing", "user_agent": USER_AGENT, **fields}
    )


def _at(minutes_ago: int) -> str:
    return (datetime.now(UTC) - timedelta(minutes=minutes_ago)).isoformat()


async def _produce(stack: Stack, payloads: list[bytes], keys: list[str]) -> None:
    producer = AIOKafkaProducer(
        bootstrap_servers=stack.settings.kafka_bootstrap_servers, acks="all", partitioner=keyed_partitioner
    )
    await producer.start()
    try:
        for payload, key in zip(payloads, keys, strict=True):
            await producer.send_and_wait(stack.settings.topic_raw, payload, key=key.encode())
    finally:
        await producer.stop()


async def test_server_events_become_collector_events_that_the_rollups_count(stack: Stack) -> None:
    tenant = await stack.tenant("Server side")
    site = tenant.site.id
    async with running_plugin("ingest", _env(stack)) as plugin:
        await plugin.init({"format": "server_events"})
        out = await plugin.process(
            [
                _event(
                    site,
                    ip="8.8.8.8",
                    user_agent=USER_AGENT,
                    timestamp=_at(3),
                    referrer="https://www.google.com/",
                ),
                _event(site, visitor="user-42", name="signup", props={"plan": "pro"}),
                _event(
                    site, ip="8.8.4.4", user_agent=USER_AGENT, url="https://shop.example/?utm_source=news"
                ),
            ],
            metadata={"http_path": "/events"},
        )
        await plugin.close()
    assert [message.error for message in out] == [None, None, None]
    events = [decode(message.payload) for message in out]  # type: ignore[arg-type]
    assert all(isinstance(event, EventV1) for event in events)
    assert {event.tenant_id for event in events} == {tenant.tenant_id}
    first, signup, _ = events
    assert abs(first.ts_ms - int((datetime.now(UTC) - timedelta(minutes=3)).timestamp() * 1000)) < 60_000
    assert first.country == "US"
    assert first.user_agent == USER_AGENT
    assert signup.name == "signup"
    assert signup.props == {"plan": "pro"}
    assert out[0].metadata["pulse_key"] == partition_key(first).decode()
    assert out[0].metadata["http_path"] == "/events"

    await _produce(stack, [m.payload for m in out], [str(m.metadata["pulse_key"]) for m in out])  # type: ignore[misc]
    assert await stack.counts(tenant, {"events": 3, "pageviews": 2}) == {"events": 3, "pageviews": 2}


UA = "Mozilla/5.0"
GOOD = {"url": "https://a.example/", "visitor": "v", "user_agent": UA}

# (the event, or raw bytes; what its refusal says)
REFUSALS: list[tuple[dict[str, object] | bytes, str]] = [
    (b"{not json", "not a JSON event"),
    (b"\xff\xfe\x00garbage", "not a JSON event"),
    (b"[" * 10_000 + b"]" * 10_000, "Expected `object`, got `array`"),
    (b"[]", "Expected `object`"),
    ({"url": None}, "Expected `str`, got `null` - at `$.url`"),
    ({"colour": "red"}, "unknown field `colour`"),
    ({"url": "/relative"}, "absolute http(s) URL"),
    ({"url": "javascript:alert(1)"}, "absolute http(s) URL"),
    ({"url": "https://a.example/" + "a" * 5000}, "length <= 2048"),
    ({"user_agent": ""}, "needs `user_agent`"),
    ({"visitor": None}, "needs `visitor` or `ip`"),
    ({"visitor": None, "ip": "localhost"}, "`ip` is not an IP address"),
    ({"visitor": "a b"}, "`$.visitor`"),
    ({"timestamp": "2026-01-01T00:00:00"}, "needs a time zone"),
    ({"timestamp": "3026-01-01T00:00:00Z"}, "in the future"),
    ({"timestamp": "2020-01-01T00:00:00Z"}, "s old, the most this pipeline accepts"),
    ({"props": {"a": {"b": 1}}}, "Expected `str`"),
    ({"props": {f"k{i}": "v" for i in range(31)}}, "at most 30 props"),
    ({"name": ""}, "length >= 1"),
    ({"screen_width": -1}, "Expected `int` >= 0"),
]


async def test_invalid_events_are_refused_with_their_reason_and_never_hold_up_the_rest(stack: Stack) -> None:
    tenant = await stack.tenant("Refusals")
    site = tenant.site.id
    payloads = [
        case if isinstance(case, bytes) else msgspec.json.encode({"site": site, **GOOD, **case})
        for case, _ in REFUSALS
    ]
    async with running_plugin("ingest", _env(stack)) as plugin:
        await plugin.init({"format": "server_events"})
        out = await plugin.process([*payloads, _event(site, visitor="ok")])
    *refused, passed = out
    assert len(refused) == len(REFUSALS)
    for message, payload, (_, reason) in zip(refused, payloads, REFUSALS, strict=True):
        assert message.error is not None, payload[:80]
        assert reason in message.error.message, (payload[:80], message.error.message)
        assert message.payload == payload
        assert message.metadata["pulse_error"] == message.error.message
    assert passed.error is None
    assert decode(passed.payload).site_id == site  # type: ignore[arg-type]


async def test_the_collectors_refusals_apply_unknown_disabled_and_foreign_hosts(stack: Stack) -> None:
    tenant = await stack.tenant("Admission")
    site = tenant.site.id
    disabled = await stack.accounts.create_site(tenant.tenant_id, "Closed", "closed.example")
    await stack.accounts.set_disabled(tenant.tenant_id, disabled.id, True)
    await stack.accounts.set_allowed_hosts(tenant.tenant_id, site, ["shop.example"])
    async with running_plugin("ingest", _env(stack)) as plugin:
        await plugin.init({"format": "server_events"})
        out = await plugin.process(
            [
                _event("no-such-site", visitor="v"),
                _event(disabled.id, visitor="v"),
                _event(site, visitor="v", url="https://evil.example/"),
                _event(site, visitor="v"),
            ]
        )
    reasons = [message.error.message if message.error else None for message in out]
    assert reasons == [
        "unknown site key 'no-such-site' ($.s)",
        f"site {disabled.id!r} is disabled ($.s)",
        f"site {site!r} does not accept events from 'evil.example' ($.u)",
        None,
    ]


async def test_bots_are_dropped_without_an_error(stack: Stack) -> None:
    tenant = await stack.tenant("Bots")
    site = tenant.site.id
    googlebot = "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)"
    async with running_plugin("ingest", _env(stack)) as plugin:
        await plugin.init({"format": "server_events"})
        out = await plugin.process([_event(site, ip="66.249.66.1", user_agent=googlebot)])
    assert out == []


async def test_hostile_strings_travel_as_data(stack: Stack) -> None:
    tenant = await stack.tenant("Hostile")
    site = tenant.site.id
    script = "<script>alert(1)</script>"
    async with running_plugin("ingest", _env(stack)) as plugin:
        await plugin.init({"format": "server_events"})
        (out,) = await plugin.process(
            [
                _event(
                    site,
                    visitor="v",
                    url=f"https://shop.example/{script}",
                    referrer=script,
                    props={script: script},
                )
            ]
        )
    event = decode(out.payload)  # type: ignore[arg-type]
    assert event.url == f"https://shop.example/{script}"
    assert event.props == {script: script}


async def test_access_log_lines_become_page_views(stack: Stack) -> None:
    tenant = await stack.tenant("Access log")
    site = tenant.site.id
    when = datetime.now(UTC) - timedelta(minutes=5)
    stamp = when.strftime("%d/%b/%Y:%H:%M:%S +0000")
    lines = [
        f'203.0.113.9 - - [{stamp}] "GET /docs/start?utm_source=mail HTTP/1.1" 200 5120 '
        f'"https://duckduckgo.com/" "{USER_AGENT}"',
        f'203.0.113.9 - - [{stamp}] "GET /static/app.css HTTP/1.1" 200 812 "-" "{USER_AGENT}"',
        f'203.0.113.9 - - [{stamp}] "POST /login HTTP/1.1" 302 0 "-" "{USER_AGENT}"',
        "this is not a log line",
    ]
    async with running_plugin("ingest", _env(stack)) as plugin:
        await plugin.init({"format": "access_log", "site": site, "origin": "https://docs.example"})
        out = await plugin.process(lines)
    view, malformed = out
    event = decode(view.payload)  # type: ignore[arg-type]
    assert event.url == "https://docs.example/docs/start?utm_source=mail"
    assert event.referrer == "https://duckduckgo.com/"
    assert event.ts_ms == int(when.timestamp()) * 1000
    assert malformed.error is not None
    assert "not a line in common or combined log format" in malformed.error.message


@pytest.mark.parametrize(
    ("config", "reason"),
    [
        ({"format": "access_log"}, "needs `site`"),
        ({"format": "access_log", "site": "s", "origin": "https://a.example/path"}, "needs `origin`"),
        ({"format": "csv"}, "Invalid enum value 'csv'"),
        ({"max_age_s": 0}, "must be positive"),
        ({"colour": "red"}, "unknown field `colour`"),
    ],
)
async def test_a_bad_configuration_is_refused_at_init(
    stack: Stack, config: dict[str, object], reason: str
) -> None:
    async with running_plugin("ingest", _env(stack)) as plugin:
        with pytest.raises(PluginError, match="pulse_ingest configuration") as refused:
            await plugin.init(config)  # type: ignore[arg-type]
    assert reason in str(refused.value)


async def test_export_turns_events_into_archive_lines_without_private_query_parameters(stack: Stack) -> None:
    event = EventV1(
        event_id=bytes(range(16)),
        tenant_id="t",
        site_id="s",
        ts_ms=int(datetime(2026, 11, 20, 23, 59, tzinfo=UTC).timestamp() * 1000),
        name="pageview",
        url="https://shop.example/p?email=a%40b.example&utm_source=news&gclid=x#top",
        referrer="https://www.google.com/",
        visitor_id=2**64 - 1,
        user_agent=USER_AGENT,
        screen_width=1280,
        props={"plan": "pro"},
        country="DE",
    )
    async with running_plugin("export", _env(stack)) as plugin:
        await plugin.init({})
        line, garbage = await plugin.process([encode(event), b"not msgpack"])
    assert line.metadata["pulse_date"] == "2026-11-20"
    assert line.metadata["pulse_tenant"] == "t"
    record = msgspec.json.decode(line.payload)  # type: ignore[arg-type]
    assert record["url"] == "https://shop.example/p?utm_source=news&gclid=x"
    assert record["event_id"] == bytes(range(16)).hex()
    assert record["visitor_id"] == 2**64 - 1
    assert garbage.error is not None
    assert "not a Pulse event" in garbage.error.message


def test_plugin_without_a_known_component_says_how_to_run_it() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "pulse.connect", "nope"], capture_output=True, text=True, check=False
    )
    assert result.returncode == 2
    assert "usage: python -m pulse.connect ingest|export" in result.stderr
