"""A 202 is a promise that Kafka holds the event: kept under load while the broker hangs,
dies or the collector itself is killed, and the collector recovers without a restart.

Each test runs its own Tansu broker (memory storage), drives the collector with concurrent
clients posting one event per request, each with a unique URL, then reads the whole topic
back and checks that every URL answered 202 is in it.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import msgspec
import pytest

from load import Load, kill, role_process, topic_events
from pulse.collector.app import create_collector_app
from pulse.embedded.services import free_port, start_broker
from pulse.oltp.accounts import Accounts
from pulse.oltp.db import create_engine
from pulse.oltp.migrate import apply_oltp_migrations
from pulse.settings import Settings, load_settings
from stack import Stack, serving

PRODUCE_TIMEOUT_S = 1.0
# A refusal must come within the produce timeout; this covers the event loop's and the client's share.
REFUSAL_SLACK_S = 1.0
OUTAGE_S = 3.0
RECOVERY_TIMEOUT_S = 15.0
# Refusals are timed against the produce timeout, under load: with no other test beside them.
pytestmark = pytest.mark.serial


async def topic_urls(settings: Settings, site: str) -> set[str]:
    return {event.url for event in await topic_events(settings) if event.site_id == site}


def wait_stopped(pid: int, timeout_s: float = 5.0) -> None:
    """Until the kernel reports the process stopped ('T'), so later requests cannot reach a running broker."""
    deadline = time.monotonic() + timeout_s
    while Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "T":
        assert time.monotonic() < deadline, f"process {pid} did not stop"
        time.sleep(0.005)


async def wait_connected(
    base_url: str, process: subprocess.Popen[bytes] | None = None, timeout_s: float = 30.0
) -> None:
    """Until /healthz says the producer is connected; fails at once if `process` exits."""
    deadline = time.monotonic() + timeout_s
    async with httpx.AsyncClient(base_url=base_url) as client:
        while True:
            with contextlib.suppress(httpx.TransportError):
                if (await client.get("/healthz")).json()["dependencies"]["kafka"]:
                    return
            assert process is None or process.poll() is None, f"the collector exited ({process.returncode})"
            assert time.monotonic() < deadline, "the collector did not connect to the broker"
            await asyncio.sleep(0.1)


def collector_settings(stack: Stack, bootstrap: str) -> Settings:
    return msgspec.structs.replace(
        stack.settings,
        kafka_bootstrap_servers=bootstrap,
        produce_timeout_s=PRODUCE_TIMEOUT_S,
        rate_limit_ip_per_s=0.0,
    )


def report(name: str, figures: dict[str, object]) -> None:
    print(f"\n{name}: " + ", ".join(f"{k}={v}" for k, v in figures.items()))


async def test_hung_broker_gets_503_then_collector_recovers_and_202s_are_in_kafka(
    stack: Stack, tmp_path: Path
) -> None:
    site = (await stack.tenant("HungBroker")).site.id
    broker, bootstrap = start_broker(tmp_path)
    settings = collector_settings(stack, bootstrap)
    try:
        async with serving(create_collector_app(settings), free_port()) as url:
            await wait_connected(url)
            async with Load(url, site, "hung") as load:
                await load.until(lambda: len(load.accepted()) >= 100, 15, "100 events accepted")
                broker.process.send_signal(signal.SIGSTOP)
                wait_stopped(broker.process.pid)
                stopped = time.monotonic()
                await asyncio.sleep(OUTAGE_S)
                resumed = time.monotonic()
                broker.process.send_signal(signal.SIGCONT)
                await load.until(
                    lambda: len(load.accepted(after=resumed)) >= 100, RECOVERY_TIMEOUT_S, "recovery"
                )
            recovered = min(o.ended for o in load.outcomes if o.status == 202 and o.started > resumed)
        kept = await topic_urls(settings, site)
    finally:
        broker.process.send_signal(signal.SIGCONT)
        broker.stop()

    during = [o for o in load.outcomes if stopped <= o.started and o.ended < resumed]
    report(
        "hung broker",
        {
            "total": load.tally(),
            "started_and_answered_while_stopped": load.tally(during),
            "slowest_refusal_s": round(max((o.ended - o.started for o in during), default=0), 2),
            "recovered_after_s": round(recovered - resumed, 2),
            "accepted": len(load.accepted()),
            "in_kafka": len(kept),
            "in_kafka_without_202": len(kept - load.accepted()),
        },
    )
    assert during, "no request was answered while the broker was stopped"
    assert {o.status for o in during} == {503}, load.tally(during)
    assert max(o.ended - o.started for o in during) < PRODUCE_TIMEOUT_S + REFUSAL_SLACK_S
    assert load.tally().get("connection_error") is None, [
        (o.error, round(o.ended - o.started, 3), round(o.started - resumed, 3))
        for o in load.outcomes
        if o.status is None
    ]
    missing = load.accepted() - kept
    assert not missing, f"{len(missing)} events answered 202 are not in Kafka, e.g. {sorted(missing)[:5]}"


async def test_broker_replaced_on_same_port_collector_recovers_without_restart(
    stack: Stack, tmp_path: Path
) -> None:
    site = (await stack.tenant("ReplacedBroker")).site.id
    port = free_port()
    broker, _ = start_broker(tmp_path, port)
    settings = collector_settings(stack, f"127.0.0.1:{port}")
    try:
        async with serving(create_collector_app(settings), free_port()) as url:
            await wait_connected(url)
            async with Load(url, site, "replaced") as load:
                await load.until(lambda: len(load.accepted()) >= 100, 15, "100 events accepted")
                broker.process.kill()
                broker.process.wait()
                killed = time.monotonic()
                await asyncio.sleep(OUTAGE_S)
                broker.stop()
                broker, _ = start_broker(tmp_path, port)
                restarted = time.monotonic()
                await load.until(
                    lambda: len(load.accepted(after=restarted)) >= 100, RECOVERY_TIMEOUT_S, "recovery"
                )
            recovered = min(o.ended for o in load.outcomes if o.status == 202 and o.started > restarted)
        # The new broker started empty: what was acknowledged before it came up died with the old one.
        kept = await topic_urls(settings, site)
    finally:
        broker.stop()

    during = [o for o in load.outcomes if killed <= o.started and o.ended < restarted]
    after = load.accepted(after=restarted)
    report(
        "replaced broker",
        {
            "total": load.tally(),
            "started_and_answered_while_down": load.tally(during),
            "slowest_refusal_s": round(max((o.ended - o.started for o in during), default=0), 2),
            "recovered_after_s": round(recovered - restarted, 2),
            "accepted_by_new_broker": len(after),
            "in_new_broker": len(kept),
        },
    )
    assert during, "no request was answered while the broker was down"
    assert {o.status for o in during} == {503}, load.tally(during)
    assert max(o.ended - o.started for o in during) < PRODUCE_TIMEOUT_S + REFUSAL_SLACK_S
    assert load.tally().get("connection_error") is None
    missing = after - kept
    assert not missing, f"{len(missing)} events answered 202 are not in Kafka, e.g. {sorted(missing)[:5]}"


async def test_collector_killed_under_load_every_202_is_in_kafka(tmp_path: Path) -> None:
    broker, bootstrap = start_broker(tmp_path)
    settings = load_settings({"PULSE_HOME": str(tmp_path), "KAFKA_BOOTSTRAP_SERVERS": bootstrap})
    engine = create_engine(settings.effective_database_url)
    try:
        await apply_oltp_migrations(engine, settings.migrations_dir / "oltp")
        accounts = Accounts(engine)
        tenant = await accounts.create_tenant("Killed collector")
        site = (await accounts.create_site(tenant.id, "Killed", "killed.example")).id
    finally:
        await engine.dispose()
    port = free_port()
    try:
        with collector_process(tmp_path, bootstrap, port) as collector:
            url = f"http://127.0.0.1:{port}"
            await wait_connected(url, collector)
            async with Load(url, site, "killed") as load:
                await load.until(lambda: len(load.accepted()) >= 300, 20, "300 events accepted")
                # From a thread, so the clients keep sending while the signal lands.
                killed = await asyncio.to_thread(kill, collector)
        kept = await topic_urls(settings, site)
    finally:
        broker.stop()

    accepted = load.accepted()
    cut_short = [o for o in load.outcomes if o.status is None and o.started < killed]
    report(
        "killed collector",
        {
            "total": load.tally(),
            "cut_short_by_kill": len(cut_short),
            "accepted": len(accepted),
            "in_kafka": len(kept),
            "in_kafka_without_202": len(kept - accepted),
        },
    )
    # The kill cut requests short, so it happened under load.
    assert cut_short, load.tally()
    missing = accepted - kept
    assert not missing, f"{len(missing)} events answered 202 are not in Kafka, e.g. {sorted(missing)[:5]}"


@contextlib.contextmanager
def collector_process(home: Path, bootstrap: str, port: int) -> Iterator[subprocess.Popen[bytes]]:
    """`pulse run collector` as production runs it, in its own process; killed on the way out."""
    env = {
        "KAFKA_BOOTSTRAP_SERVERS": bootstrap,
        "PULSE_COLLECTOR_PORT": str(port),
        "PULSE_PRODUCE_TIMEOUT_S": str(PRODUCE_TIMEOUT_S),
        "PULSE_RATE_LIMIT_IP_PER_S": "0",
    }
    with role_process(home, ["collector"], env) as process:
        yield process
