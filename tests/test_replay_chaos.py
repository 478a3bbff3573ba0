"""A replay survives its worker being SIGKILLed: another run of the worker takes the job over
(its heartbeat stops), and the days swapped in are exactly what was there before.

The worker runs as `pulse run rollup dashboard` in its own process, as in production; the
snapshots are taken by a process of their own while it is stopped (chDB: one process per path).
"""

from __future__ import annotations

import asyncio
import random
import sys
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from aiokafka import AIOKafkaProducer

from load import pulse_env, stats_api
from pulse.embedded.services import free_port
from pulse.events.message import EventV1, encode, partition_key
from pulse.kafka.partitioning import keyed_partitioner
from pulse.oltp.accounts import Accounts
from pulse.oltp.db import create_engine
from pulse.oltp.replay_jobs import ReplayJobs
from pulse.replay.request import request_replay
from pulse.settings import load_settings
from test_rollup_chaos import Backend, services
from visitor import USER_AGENT

PASSWORD = "correct horse battery"
VISITORS = 400
PAGES = ("/", "/pricing", "/docs", "/blog/launch", "/signup")
# Worker processes killed and restarted against deadlines, with the machine to themselves.
pytestmark = pytest.mark.serial


def _history(tenant_id: str, sites: list[str], today_start_ms: int) -> list[EventV1]:
    """Two past days of visits of 1 to 5 pages on each site."""
    rng = random.Random(11)
    events = []
    for site in sites:
        for visitor in range(VISITORS):
            ts = today_start_ms - rng.randrange(2 * 86_400_000 - 3_600_000)
            for page in PAGES[: rng.randint(1, 5)]:
                events.append(
                    EventV1(
                        event_id=uuid.uuid4().bytes,
                        tenant_id=tenant_id,
                        site_id=site,
                        ts_ms=ts,
                        name="pageview",
                        url=f"https://chaos.example{page}",
                        referrer=rng.choice(("", "https://www.bing.com/", "https://t.co/x")),
                        visitor_id=visitor,
                        user_agent=USER_AGENT,
                        screen_width=1440,
                        props={},
                    )
                )
                ts += rng.randrange(5_000, 120_000)
    return events


async def _produce(bootstrap: str, topic: str, events: list[EventV1]) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", partitioner=keyed_partitioner)
    await producer.start()
    try:
        for event in events:
            await producer.send(topic, encode(event), key=partition_key(event))
        await producer.flush()
    finally:
        await producer.stop()


async def _stored_events(dashboard: str, site: str) -> int:
    body = await stats_api(
        dashboard, "replay@example.com", PASSWORD, f"/api/v1/sites/{site}/aggregate", period="7d"
    )
    return int(body["events"])


async def _snapshot(home: Path, tenant_id: str) -> str:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        str(Path(__file__).with_name("replay_snapshot.py")),
        str(home),
        tenant_id,
        env=pulse_env(home, {}),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(process.communicate(), 120)
    assert process.returncode == 0, err.decode()
    return out.decode()


async def _until(probe, expected: object, timeout_s: float) -> object:  # type: ignore[no-untyped-def]
    deadline = asyncio.get_running_loop().time() + timeout_s
    value = await probe()
    while value != expected and asyncio.get_running_loop().time() < deadline:
        await asyncio.sleep(0.5)
        value = await probe()
    return value


async def test_a_replay_whose_worker_is_killed_is_finished_by_the_next_and_exact(tmp_path: Path) -> None:
    today = datetime.now(UTC).date()
    today_start_ms = int(datetime(today.year, today.month, today.day, tzinfo=UTC).timestamp() * 1000)
    with services(tmp_path) as (bootstrap, redis):
        dashboard_port = free_port()
        env = {
            "KAFKA_BOOTSTRAP_SERVERS": bootstrap,
            "REDIS_URL": redis,
            "PULSE_KAFKA_EPOCH": "replay-chaos",
            "PULSE_DASHBOARD_PORT": str(dashboard_port),
            "PULSE_ROLLUP_PORT": str(free_port()),
            # Many small staging batches, and a quick takeover of a dead worker's job.
            "PULSE_ROLLUP_BATCH_MAX": "200",
            "PULSE_REPLAY_STALE_S": "2",
            "PULSE_REPLAY_POLL_S": "0.5",
        }
        migrate = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "pulse", "migrate", env=pulse_env(tmp_path, env)
        )
        assert await migrate.wait() == 0
        settings = load_settings({"PULSE_HOME": str(tmp_path)})
        engine = create_engine(settings.effective_database_url)
        backend = Backend(tmp_path, env)
        try:
            accounts = Accounts(engine)
            tenant = await accounts.create_tenant("Replay chaos")
            await accounts.create_user("replay@example.com", PASSWORD, tenant.id, "owner")
            sites = [(await accounts.create_site(tenant.id, f"S{n}", f"s{n}.example")).id for n in (1, 2)]
            events = _history(tenant.id, sites, today_start_ms)
            backend.start()
            await _produce(bootstrap, settings.topic_raw, events)
            dashboard = f"http://127.0.0.1:{dashboard_port}"
            per_site = {site: sum(1 for e in events if e.site_id == site) for site in sites}

            async def stored() -> dict[str, int]:
                try:
                    return {site: await _stored_events(dashboard, site) for site in sites}
                except httpx.HTTPError:
                    return {}

            assert await _until(stored, per_site, 90) == per_site
            backend.stop()
            before = await _snapshot(tmp_path, tenant.id)

            backend.start()
            jobs = ReplayJobs(engine)
            job = await request_replay(
                accounts,
                jobs,
                tenant_id=tenant.id,
                site_id=None,
                first_day=today - timedelta(days=2),
                last_day=today - timedelta(days=1),
            )
            # One kill in each phase the job is seen in: mid-emission, mid-staging, mid-swap.
            order = ("requested", "emitting", "rebuilding", "swapping", "done", "failed")
            states = []
            for target in ("emitting", "rebuilding", "swapping"):
                while True:
                    current = await jobs.get(job.id)
                    assert current is not None
                    if order.index(current.state) > order.index(target):
                        break
                    if current.state == target and (target != "emitting" or current.emitted):
                        states.append((current.state, current.emitted, current.staged))
                        await asyncio.to_thread(backend.kill)
                        break
                    await asyncio.sleep(0.02)

            async def state() -> str:
                current = await jobs.get(job.id)
                return "" if current is None else current.state

            assert await _until(state, "done", 180) == "done"
            final = await jobs.get(job.id)
            backend.stop()
            after = await _snapshot(tmp_path, tenant.id)
        finally:
            backend.close()
            await engine.dispose()

    print(f"replay chaos: {len(events)} events, kills at (state, emitted, staged) {states}")
    assert final is not None
    assert final.total == len(events)
    assert len(states) >= 2, states
    assert after == before
