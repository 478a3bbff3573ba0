"""Load and processes for the resilience tests: concurrent clients with unique URLs, roles to kill."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import httpx
import msgspec
from aiokafka import AIOKafkaConsumer, TopicPartition

from pulse.events.message import AnyEvent, decode
from pulse.settings import Settings
from visitor import BROWSER

CLIENTS = 6


class Outcome(msgspec.Struct, frozen=True):
    url: str
    started: float
    ended: float
    # HTTP status, or None when the request failed at the connection (reset, refused, timeout).
    status: int | None
    # The transport error's type, when status is None: says which way the connection failed.
    error: str = ""


class Load:
    """CLIENTS concurrent clients, each posting one event after another until stopped."""

    def __init__(self, base_url: str, site: str | Sequence[str], tag: str) -> None:
        self.outcomes: list[Outcome] = []
        self._base_url = base_url
        self._sites = itertools.cycle([site] if isinstance(site, str) else site)
        self._tag = tag
        self._numbers = itertools.count()
        self._stop = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._client: httpx.AsyncClient | None = None

    async def __aenter__(self) -> Load:
        self._client = httpx.AsyncClient(
            base_url=self._base_url,
            headers=BROWSER,
            timeout=10,
            limits=httpx.Limits(max_connections=CLIENTS, max_keepalive_connections=CLIENTS),
        )
        self._tasks = [asyncio.create_task(self._client_loop()) for _ in range(CLIENTS)]
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.stop()

    async def stop(self) -> None:
        self._stop.set()
        await asyncio.gather(*self._tasks)
        if self._client is not None:
            await self._client.aclose()
            self._client = None

    async def _client_loop(self) -> None:
        assert self._client is not None
        while not self._stop.is_set():
            url = f"https://load.example/{self._tag}/{next(self._numbers)}"
            body = msgspec.json.encode({"s": next(self._sites), "u": url})
            started = time.monotonic()
            try:
                response = await self._client.post("/api/event", content=body)
            except httpx.TransportError as exc:
                self.outcomes.append(Outcome(url, started, time.monotonic(), None, type(exc).__name__))
                # The server is gone: do not spin on refused connections.
                await asyncio.sleep(0.05)
                continue
            self.outcomes.append(Outcome(url, started, time.monotonic(), response.status_code))
            if response.status_code != 202:
                assert response.headers.get("retry-after"), response.text

    def accepted(self, after: float = float("-inf")) -> set[str]:
        """URLs answered 202 whose answer arrived after `after`."""
        return {o.url for o in self.outcomes if o.status == 202 and o.ended > after}

    async def until(self, condition: Callable[[], bool], timeout_s: float, what: str) -> None:
        deadline = time.monotonic() + timeout_s
        while not condition():
            assert time.monotonic() < deadline, f"{what} within {timeout_s:.0f}s: {self.tally()}"
            await asyncio.sleep(0.02)

    def tally(self, outcomes: list[Outcome] | None = None) -> dict[str, int]:
        counts: dict[str, int] = {}
        for o in self.outcomes if outcomes is None else outcomes:
            key = "connection_error" if o.status is None else str(o.status)
            counts[key] = counts.get(key, 0) + 1
        return counts


def kill(process: subprocess.Popen[bytes]) -> float:
    """SIGKILL and reap; returns when the process was gone."""
    process.kill()
    process.wait()
    return time.monotonic()


def pulse_env(home: Path, env: Mapping[str, str]) -> dict[str, str]:
    """This process's environment without its Pulse configuration, plus PULSE_HOME and `env`."""
    clean = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith("PULSE_")
        and name
        not in {
            "KAFKA_BOOTSTRAP_SERVERS",
            "CLICKHOUSE_URL",
            "REDIS_URL",
            "DATABASE_URL",
            "OTEL_EXPORTER_OTLP_ENDPOINT",
        }
    }
    return {**clean, "PULSE_HOME": str(home), **env}


@contextlib.contextmanager
def role_process(
    home: Path, roles: Sequence[str], env: Mapping[str, str]
) -> Iterator[subprocess.Popen[bytes]]:
    """`pulse run ROLE...` as production runs it, in its own process; killed on the way out."""
    log_path = home / "logs" / f"{'-'.join(roles)}.log"
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with log_path.open("ab") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "pulse", "run", *roles],
            env=pulse_env(home, env),
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
    try:
        yield process
    finally:
        if process.poll() is None:
            process.kill()
        process.wait()


async def topic_events(settings: Settings) -> list[AnyEvent]:
    """Every event in the whole raw topic, read from offset 0 up to the end it reports.

    Stops early when fetches keep coming back empty short of that end: a broker that lists
    records it does not serve must fail the comparison, not hang the test.
    """
    consumer = AIOKafkaConsumer(bootstrap_servers=settings.kafka_bootstrap_servers, enable_auto_commit=False)
    await consumer.start()
    events: list[AnyEvent] = []
    try:
        partitions = [TopicPartition(settings.topic_raw, p) for p in range(settings.kafka_partitions)]
        consumer.assign(partitions)
        ends = await consumer.end_offsets(partitions)
        # Memory storage keeps every record from offset 0 (no retention).
        for tp in partitions:
            consumer.seek(tp, 0)

        async def behind() -> bool:
            return any([await consumer.position(tp) < end for tp, end in ends.items()])

        empty = 0
        while empty < 4 and await behind():
            batches = await consumer.getmany(*partitions, timeout_ms=500)
            empty = 0 if batches else empty + 1
            events.extend(decode(record.value) for records in batches.values() for record in records)
    finally:
        await consumer.stop()
    return events


async def stats_api(dashboard: str, email: str, password: str, path: str, **params: str) -> Any:
    """GET a stats API path as the tenant user `email` reads it."""
    async with httpx.AsyncClient(base_url=dashboard, timeout=30) as api:
        token = (await api.post("/api/v1/token", json={"email": email, "password": password})).json()
        response = await api.get(path, params=params, headers={"authorization": f"Bearer {token['token']}"})
        response.raise_for_status()
    return response.json()
