"""Rollup worker throughput: a pre-filled topic to durable ClickHouse and Redis state.

What is measured, on this machine with the broker, chDB and Valkey alongside as `pulse up`
runs them:
  * the worker: `pulse run rollup`, exactly as production runs it, starts against a topic
    that already holds BENCH_EVENTS events and works until its consumer group's committed
    offsets reach the end of every partition. The worker commits a batch only after
    ClickHouse accepted it and Redis was updated, so "committed == end" means every event
    is durable in both. Its rate is taken from its first commit to its last (so process
    start, chDB opening and the group join are left out and reported separately as
    `startup_s`), and also over the whole run, startup included;
  * the floor any Kafka consumer pays: a plain aiokafka consume-and-msgspec-decode loop over
    the same topic in the same run, with no ClickHouse, Redis or commits; and the ratio of
    the worker's rate to it.

Why the ratio is fair: both are one Python process pinned to the same core (the broker,
Valkey and this script share the other), on uvloop with the garbage collector tuned as
`pulse run` tunes it, reading the same records from the same broker with the same consumer
settings (fetch wait, batch size: the loop's `max_records` is the worker's batch size) and
decoding each with the same `pulse.events.message.decode`; both rates run from the end of
their first batch to their last record, so neither pays for connecting. The loop is run
BENCH_BASELINE_ROUNDS times before the worker and its median is used. What differs is only
what the worker does beyond consuming: its consumer group, commits, enrichment, sessions,
ClickHouse (whose background merges run on the worker's core too, as chDB lives in its
process) and Redis; its idle metrics endpoint costs nothing measurable. Other processes on
the machine are not controlled: the share of the worker's core they took is printed, and CPU
ms per event, also printed, does not depend on it.

The events are what the collector publishes: EventV1 from a few tenants and sites, many
visitors, each with one of a small pool of real browser User-Agents, pages with UTM
campaigns, referrers, screen widths and countries; pageviews, engagement pings (one per
page, as tracker-js sends them) and some custom events with props; timestamps spread over
the last BACKLOG_S seconds, as a backlog after an outage. They are keyed with
`partition_key` and produced as the collector produces (keyed partitioner, lz4, acks=all)
into a fresh `events.raw`; that pre-fill is timed separately and is not a measured figure.

The run is valid only if ClickHouse then holds exactly the events produced (counted by a
separate process over the worker's chDB path, distinct event ids included, and the pageviews
the materialized views rolled up) and Redis counted every non-engagement event once.
Offsets are compared with the ends the producer was acknowledged at, not the broker's
ListOffsets: Tansu answers that up to a batch short of the last record it serves.

The last line of output is one JSON object. The exit code is 0 whenever the run was valid,
whether or not the targets were met (this reports, it does not gate), and 1 for an invalid run.
BENCH_PROFILE=path also records the worker with py-spy from its first commit on (raw format;
BENCH_PY_SPY names the command, default `py-spy`, BENCH_PY_SPY_ARGS adds options such as
--native): a profiled run is slower and its figures are marked as such.
"""

from __future__ import annotations

import asyncio
import gc
import json
import os
import random
import re
import secrets
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import msgspec
import redis
import uvloop
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import KafkaError

from harness import LOAD_CPU, SERVER_CPU, cpu_seconds, embedded_broker, embedded_valkey, pinned, stop_server
from pulse.embedded.services import free_port
from pulse.events.message import EventV1, decode, encode, partition_key
from pulse.kafka.partitioning import keyed_partitioner
from pulse.kafka.topics import ensure_topics
from pulse.live.keys import seconds_key
from pulse.live.writer import ENGAGEMENT
from pulse.loadgen.traffic import AGENTS, CAMPAIGNS, CUSTOM_EVENTS, PAGES, REFERRERS, WIDTHS
from pulse.oltp.accounts import SITE_ID_ALPHABET, SITE_ID_LENGTH
from pulse.settings import Settings

EVENTS = int(os.environ.get("BENCH_EVENTS", "300000"))
# The worker's batch size (PULSE_ROLLUP_BATCH_MAX); unset, the worker's own default.
BATCH_MAX = int(os.environ.get("BENCH_BATCH_MAX", "0")) or Settings().rollup_batch_max
BASELINE_ROUNDS = int(os.environ.get("BENCH_BASELINE_ROUNDS", "3"))
# A worker that commits nothing new for this long has stalled; the run is then invalid.
STALL_S = float(os.environ.get("BENCH_STALL_S", "30"))
# Keeps `make bench` bounded: a worker this slow is reported as not finished (lower BENCH_EVENTS).
WORKER_TIMEOUT_S = float(os.environ.get("BENCH_WORKER_TIMEOUT_S", "150"))
PROFILE = os.environ.get("BENCH_PROFILE", "")
PY_SPY = os.environ.get("BENCH_PY_SPY", "py-spy")
PY_SPY_ARGS = os.environ.get("BENCH_PY_SPY_ARGS", "")  # e.g. "--native --rate 200"

TARGET_EPS = 50_000
TARGET_RATIO = 0.4
# Below this share of its core the worker waited on something else (the broker, chDB's disk).
LOW_CORE_SHARE = 0.9
POLL_S = 0.05
SEED = 7
VISITORS = 20_000
BACKLOG_S = 300
ENGAGEMENT_SHARE = 0.4
CUSTOM_SHARE = 0.05
COUNTRIES = [("US", 30), ("DE", 12), ("GB", 10), ("FR", 8), ("IN", 8), ("BR", 6), ("CA", 5), ("NL", 5)]
COUNTRIES += [("JP", 4), ("PL", 3), ("ES", 3), ("", 6)]
# (domain, weight) per tenant: one large site, a small agency with two, a shop with two.
TENANTS = [
    [("blog.example.com", 50)],
    [("agency.example.net", 12), ("client.example.org", 8)],
    [("shop.example.de", 22), ("help.example.de", 8)],
]

BENCH_FILE = Path(__file__).resolve()


# --------------------------------------------------------------------------- events


@dataclass(frozen=True, slots=True)
class Site:
    tenant_id: str
    site_id: str
    domain: str


@dataclass(frozen=True, slots=True)
class Visitor:
    site: Site
    visitor_id: int
    user_agent: str
    screen_width: int
    country: str


def _weighted[T](rng: random.Random, weighted: list[tuple[T, int]], k: int) -> list[T]:
    return rng.choices([v for v, _ in weighted], weights=[w for _, w in weighted], k=k)


def _site_id(rng: random.Random) -> str:
    return "".join(rng.choice(SITE_ID_ALPHABET) for _ in range(SITE_ID_LENGTH))


def traffic(events: int, seed: int = SEED) -> Iterator[EventV1]:
    """`events` realistic EventV1 in arrival order, deterministic for a seed (event ids aside)."""
    rng = random.Random(seed)
    sites: list[tuple[Site, int]] = []
    for domains in TENANTS:
        tenant_id = uuid.UUID(int=rng.getrandbits(128)).hex
        sites += [(Site(tenant_id, _site_id(rng), domain), weight) for domain, weight in domains]
    visitor_sites = _weighted(rng, sites, VISITORS)
    agents = _weighted(rng, AGENTS, VISITORS)
    widths = _weighted(rng, WIDTHS, VISITORS)
    countries = _weighted(rng, COUNTRIES, VISITORS)
    visitors = [
        Visitor(site, rng.getrandbits(64), agent, width, country)
        for site, agent, width, country in zip(visitor_sites, agents, widths, countries, strict=True)
    ]
    who = rng.choices(visitors, k=events)
    pages = _weighted(rng, PAGES, events)
    campaigns = _weighted(rng, CAMPAIGNS, events)
    referrers = _weighted(rng, REFERRERS, events)
    id_prefix = os.urandom(8)
    start_ms = int(time.time() * 1000) - BACKLOG_S * 1000
    for i in range(events):
        visitor = who[i]
        roll = rng.random()
        name, props, engagement_ms = "pageview", {}, 0
        if roll < CUSTOM_SHARE:
            name, custom = rng.choice(CUSTOM_EVENTS)
            props = dict(custom)
        elif roll < CUSTOM_SHARE + ENGAGEMENT_SHARE:
            name, engagement_ms = ENGAGEMENT, rng.randrange(1_000, 180_000)
        yield EventV1(
            event_id=id_prefix + i.to_bytes(8, "big"),
            tenant_id=visitor.site.tenant_id,
            site_id=visitor.site.site_id,
            ts_ms=start_ms + i * BACKLOG_S * 1000 // events,
            name=name,
            url=f"https://{visitor.site.domain}{pages[i]}{campaigns[i] if name == 'pageview' else ''}",
            referrer=referrers[i] if name == "pageview" else "",
            visitor_id=visitor.visitor_id,
            user_agent=visitor.user_agent,
            screen_width=visitor.screen_width,
            props=props,
            engagement_ms=engagement_ms,
            country=visitor.country,
        )


@dataclass(frozen=True)
class Prefill:
    events: int
    pageviews: int
    counted: int  # events the live layer counts: all but engagement pings
    tenants: int
    sites: int
    visitors: int
    bytes: int
    ends: dict[int, int]  # partition -> offset after its last record, as acknowledged
    elapsed_s: float


async def _prefill(settings: Settings, events: int) -> Prefill:
    await ensure_topics(settings)
    compression = settings.produce_compression
    # As the collector's publisher produces (pulse.kafka.publisher): acks=all, lz4, the same
    # partitioner, so records land on the same partitions in the same batch shape.
    producer = AIOKafkaProducer(
        bootstrap_servers=settings.kafka_bootstrap_servers,
        acks="all",
        linger_ms=2,
        compression_type=None if compression == "none" else compression,
        max_batch_size=256 * 1024,
        partitioner=keyed_partitioner,
    )
    await producer.start()
    started = time.perf_counter()
    pageviews = counted = size = 0
    tenants: set[str] = set()
    sites: set[str] = set()
    visitors: set[int] = set()
    try:
        futures = []
        for event in traffic(events):
            value = encode(event)
            size += len(value)
            pageviews += event.name == "pageview"
            counted += event.name != ENGAGEMENT
            tenants.add(event.tenant_id)
            sites.add(event.site_id)
            visitors.add(event.visitor_id)
            futures.append(await producer.send(settings.topic_raw, value, key=partition_key(event)))
        acknowledged = await asyncio.gather(*futures)
    finally:
        await producer.stop()
    ends: dict[int, int] = dict.fromkeys(range(settings.kafka_partitions), 0)
    for record in acknowledged:
        ends[record.partition] = max(ends[record.partition], record.offset + 1)
    return Prefill(
        events=events,
        pageviews=pageviews,
        counted=counted,
        tenants=len(tenants),
        sites=len(sites),
        visitors=len(visitors),
        bytes=size,
        ends=ends,
        elapsed_s=time.perf_counter() - started,
    )


# --------------------------------------------------------------------------- plain loop


class LoopResult(msgspec.Struct, frozen=True):
    eps: float
    read: int
    first_batch: int
    elapsed_s: float
    cpu_ms_per_1000: float
    ends: dict[int, int]


def _tune_as_pulse_run() -> None:
    """The garbage collector as pulse.roles.serve leaves it for the worker."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(50_000, 20, 100)


async def _plain_loop(settings: Settings, events: int) -> LoopResult:
    _tune_as_pulse_run()
    consumer = AIOKafkaConsumer(
        bootstrap_servers=settings.kafka_bootstrap_servers,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        fetch_max_wait_ms=settings.rollup_fetch_wait_ms,
    )
    await consumer.start()
    try:
        partitions = [TopicPartition(settings.topic_raw, p) for p in range(settings.kafka_partitions)]
        consumer.assign(partitions)
        await consumer.seek_to_beginning(*partitions)
        read = first_batch = 0
        first_at = first_cpu = 0.0
        ends: dict[int, int] = {}
        deadline = time.monotonic() + STALL_S
        while read < events and time.monotonic() < deadline:
            batches = await consumer.getmany(
                timeout_ms=settings.rollup_poll_ms, max_records=settings.rollup_batch_max
            )
            for tp, records in batches.items():
                for record in records:
                    decode(record.value)
                ends[tp.partition] = records[-1].offset + 1
                read += len(records)
            if read and not first_batch:
                first_at, first_cpu, first_batch = time.perf_counter(), time.process_time(), read
        elapsed = time.perf_counter() - first_at
        cpu = time.process_time() - first_cpu
    finally:
        await consumer.stop()
    measured = read - first_batch
    return LoopResult(
        eps=measured / elapsed if elapsed > 0 else 0.0,
        read=read,
        first_batch=first_batch,
        elapsed_s=elapsed,
        cpu_ms_per_1000=cpu * 1e6 / measured if measured else 0.0,
        ends=ends,
    )


def plain_loop_main() -> None:
    """Entry point of the pinned subprocess: one round of the loop, its result as JSON on stdout."""
    settings = Settings(
        kafka_bootstrap_servers=os.environ["KAFKA_BOOTSTRAP_SERVERS"], rollup_batch_max=BATCH_MAX
    )
    result = asyncio.run(_plain_loop(settings, EVENTS), loop_factory=uvloop.new_event_loop)
    print(json.dumps(msgspec.to_builtins(result)))


def plain_loop_round(bootstrap: str) -> LoopResult:
    out = subprocess.run(
        pinned(SERVER_CPU, [sys.executable, str(BENCH_FILE), "--plain-loop"]),
        env={**os.environ, "KAFKA_BOOTSTRAP_SERVERS": bootstrap},
        capture_output=True,
        text=True,
        check=True,
    )
    return msgspec.json.decode(out.stdout.strip().splitlines()[-1], type=LoopResult)


# --------------------------------------------------------------------------- worker


MAIN_THREAD = "event loop (main thread)"
# What the worker's threads are, by the names chDB gives them (observed with chDB 4.4): the
# thread a query runs on is renamed, so the ClickHouse client's executor thread shows as "Unknown".
THREAD_ROLES = {
    "Unknown": "ClickHouse client thread: serialize + chDB insert",
    "MergeMutate": "chDB background merges",
    "ThreadPool": "chDB query threads",
}


def thread_cpu(pid: int) -> dict[str, float]:
    """CPU seconds of pid's live threads, grouped: the main thread, and the others by their name.

    Python 3.12 does not name its threads, so the ClickHouse client's executor thread (and any
    other Python thread) shows as the interpreter's name; chDB names its own.
    """
    groups: dict[str, float] = {}
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            fields = (task / "stat").read_text().rsplit(")", 1)[1].split()
            name = (task / "comm").read_text().strip()
        except OSError:  # the thread ended meanwhile
            continue
        key = MAIN_THREAD if task.name == str(pid) else name
        groups[key] = groups.get(key, 0.0) + (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return groups


def core_busy_s(cpu: str) -> float:
    """Seconds core `cpu` has spent on anything but idle and I/O wait since boot (/proc/stat)."""
    for line in Path("/proc/stat").read_text().splitlines():
        name, *ticks = line.split()
        if name == f"cpu{cpu}":
            values = [int(t) for t in ticks]
            return (sum(values[:8]) - values[3] - values[4]) / os.sysconf("SC_CLK_TCK")
    return 0.0


@dataclass
class Progress:
    """What polling the consumer group's committed offsets saw of the worker's run."""

    reason: str = ""  # why the worker did not finish; "" when it did
    first_at: float | None = None  # monotonic time of the first commit seen
    done_at: float | None = None  # of the commit that reached every end
    first_events: int = 0  # events committed at the first commit seen
    commits: int = 0  # distinct committed positions seen: a floor on the batches
    first_cpu: float = 0.0
    done_cpu: float = 0.0
    first_core_busy: float = 0.0  # the worker's core, all processes
    done_core_busy: float = 0.0
    first_threads: dict[str, float] = field(default_factory=dict)
    done_threads: dict[str, float] = field(default_factory=dict)


async def _committed(
    admin: AIOKafkaAdminClient, group: str, partitions: list[TopicPartition]
) -> dict[int, int]:
    # Tansu answers OffsetFetch only for named partitions; with none it drops the connection.
    offsets = await admin.list_consumer_group_offsets(group, partitions=partitions)
    return {tp.partition: max(0, meta.offset) for tp, meta in offsets.items()}


async def _watch(
    settings: Settings,
    ends: dict[int, int],
    process: subprocess.Popen[bytes],
    started: float,
    on_first_commit: Callable[[], None],
) -> Progress:
    """Poll the group's committed offsets until they reach `ends`, without joining the group."""
    partitions = [TopicPartition(settings.topic_raw, p) for p in ends]
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap_servers)
    await admin.start()
    seen = Progress()
    last_total, last_change = -1, time.monotonic()
    try:
        while True:
            if process.poll() is not None:
                seen.reason = f"worker exited with code {process.returncode}"
                return seen
            try:
                committed = await _committed(admin, settings.consumer_group, partitions)
            except KafkaError:  # the group does not exist until the worker joined it
                committed = {}
            now = time.monotonic()
            total = sum(min(committed.get(p, 0), end) for p, end in ends.items())
            if total != last_total:
                seen.commits += total > 0
                last_total, last_change = total, now
            if total > 0 and seen.first_at is None:
                seen.first_at, seen.first_events = now, total
                seen.first_cpu, seen.first_threads = cpu_seconds(process.pid), thread_cpu(process.pid)
                seen.first_core_busy = core_busy_s(SERVER_CPU)
                on_first_commit()
            if all(committed.get(p, 0) >= end for p, end in ends.items()):
                seen.done_at = now
                seen.done_cpu, seen.done_threads = cpu_seconds(process.pid), thread_cpu(process.pid)
                seen.done_core_busy = core_busy_s(SERVER_CPU)
                return seen
            if now - last_change > STALL_S:
                seen.reason = f"no new commit for {STALL_S:g} s"
                return seen
            if now - started > WORKER_TIMEOUT_S:
                seen.reason = f"{total:,} events committed after {WORKER_TIMEOUT_S:g} s; lower BENCH_EVENTS"
                return seen
            await asyncio.sleep(POLL_S)
    finally:
        await admin.close()


@dataclass(frozen=True)
class WorkerRun:
    finished: bool  # committed offsets reached the ends
    reason: str  # why not, when not
    total_s: float  # process start -> last commit
    startup_s: float  # process start -> first commit
    measured_s: float  # first commit -> last commit
    first_commit_events: int
    commits_seen: int
    cpu_s: float  # worker CPU time, first -> last commit
    cpu_total_s: float  # worker CPU time, process start -> last commit
    # CPU seconds by thread group, first -> last commit; "threads that ended" is the rest.
    threads: dict[str, float]
    others_on_core_s: float  # CPU time other processes took on the worker's core, first -> last commit
    metrics: dict[str, float]
    warnings: list[str]


_SAMPLE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{[^}]*\})?\s+(\S+)$")


def scrape(url: str) -> dict[str, float]:
    """Prometheus samples summed over their labels: name -> value."""
    samples: dict[str, float] = {}
    try:
        text = httpx.get(url, timeout=5).text
    except httpx.HTTPError:
        return samples
    for line in text.splitlines():
        found = _SAMPLE.match(line)
        if found and not line.startswith("#"):
            samples[found[1]] = samples.get(found[1], 0.0) + float(found[2])
    return samples


def run_worker(home: Path, bootstrap: str, redis_url: str, prefill: Prefill, settings: Settings) -> WorkerRun:
    port = free_port()
    env = {
        **os.environ,
        "PULSE_HOME": str(home),
        "KAFKA_BOOTSTRAP_SERVERS": bootstrap,
        "REDIS_URL": redis_url,
        "PULSE_ROLLUP_PORT": str(port),
        "PULSE_ROLLUP_BATCH_MAX": str(BATCH_MAX),
        # A fresh topic, as `pulse up` names each embedded broker's.
        "PULSE_KAFKA_EPOCH": secrets.token_hex(6),
    }
    log_path = home / "logs" / "rollup.log"
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with log_path.open("ab") as log:
        started = time.monotonic()
        process = subprocess.Popen(
            pinned(SERVER_CPU, [sys.executable, "-m", "pulse", "run", "rollup"]),
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    profiler: list[subprocess.Popen[bytes]] = []

    def start_profiler() -> None:
        """py-spy from the first commit on, so the profile is of the measured window, not the start."""
        if PROFILE:
            argv = [*shlex.split(PY_SPY), "record", "-p", str(process.pid), "-f", "raw", "-o", PROFILE]
            argv += shlex.split(PY_SPY_ARGS)
            profiler.append(
                subprocess.Popen(pinned(LOAD_CPU, argv), stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
            )

    try:
        seen = asyncio.run(_watch(settings, prefill.ends, process, started, start_profiler))
        metrics = scrape(f"http://127.0.0.1:{port}/metrics") if not seen.reason else {}
    finally:
        stop_server(process)
        for spy in profiler:
            try:
                spy.wait(timeout=60)
            except subprocess.TimeoutExpired:
                spy.kill()
                spy.wait()
    warnings = [
        line
        for line in log_path.read_text(errors="replace").splitlines()
        if " WARNING " in line or " ERROR " in line or "Traceback" in line
    ]
    finished = not seen.reason and seen.first_at is not None and seen.done_at is not None
    threads = {
        name: cpu - seen.first_threads.get(name, 0.0)
        for name, cpu in seen.done_threads.items()
        if cpu - seen.first_threads.get(name, 0.0) > 0
    }
    cpu_s = seen.done_cpu - seen.first_cpu
    if finished and cpu_s - sum(threads.values()) > 0.05:
        threads["threads that ended"] = cpu_s - sum(threads.values())
    return WorkerRun(
        finished=finished,
        reason=seen.reason,
        total_s=seen.done_at - started if seen.done_at else 0.0,
        startup_s=seen.first_at - started if seen.first_at else 0.0,
        measured_s=seen.done_at - seen.first_at if seen.done_at and seen.first_at else 0.0,
        first_commit_events=seen.first_events,
        commits_seen=seen.commits,
        cpu_s=cpu_s,
        cpu_total_s=seen.done_cpu,
        threads=threads,
        others_on_core_s=max(0.0, seen.done_core_busy - seen.first_core_busy - cpu_s) if finished else 0.0,
        metrics=metrics,
        warnings=warnings,
    )


# --------------------------------------------------------------------------- verification


class Stored(msgspec.Struct, frozen=True):
    rows: int
    distinct_ids: int
    pageviews_rolled_up: int


def count_main() -> None:
    """Entry point of the checking subprocess: chDB allows one data path per process, and the
    worker's is only free once it stopped."""
    from pulse.warehouse.client import connect

    settings = Settings(home=Path(os.environ["PULSE_HOME"]))
    client = connect(settings.effective_clickhouse_url, settings.clickhouse_database)
    try:
        rows, distinct = client.query("SELECT count(), uniqExact(event_id) FROM events").result_rows[0]
        pageviews = client.query("SELECT sum(pageviews) FROM stats_day").result_rows[0][0]
    finally:
        client.close()
    print(
        json.dumps({"rows": int(rows), "distinct_ids": int(distinct), "pageviews_rolled_up": int(pageviews)})
    )


def stored_in_clickhouse(home: Path) -> Stored:
    out = subprocess.run(
        [sys.executable, str(BENCH_FILE), "--count"],
        env={**os.environ, "PULSE_HOME": str(home)},
        capture_output=True,
        text=True,
    )
    if out.returncode != 0:
        raise SystemExit(f"could not count the rows in ClickHouse:\n{out.stderr[-3000:]}")
    return msgspec.json.decode(out.stdout.strip().splitlines()[-1], type=Stored)


def counted_in_redis(redis_url: str) -> int:
    """The live layer's per-second counters, summed over every site and second."""
    client = redis.Redis.from_url(redis_url)
    try:
        total = 0
        for key in client.scan_iter(match=seconds_key("*", "*", 0).rsplit(":", 1)[0] + ":*", count=1000):
            total += sum(int(v) for v in client.hvals(key))
        return total
    finally:
        client.close()


# --------------------------------------------------------------------------- main


def migrate_home(home: Path, bootstrap: str) -> None:
    """`pulse migrate` in its own process: the worker must be the only one to open the chDB path."""
    out = subprocess.run(
        [sys.executable, "-m", "pulse", "migrate"],
        env={**os.environ, "PULSE_HOME": str(home), "KAFKA_BOOTSTRAP_SERVERS": bootstrap},
        capture_output=True,
        text=True,
    )
    if out.returncode != 0:
        raise SystemExit(f"pulse migrate failed:\n{out.stdout[-2000:]}{out.stderr[-3000:]}")


def main() -> None:
    if (os.cpu_count() or 1) > 1:
        # This script (producer, offset polling, checks) stays off the measured core.
        os.sched_setaffinity(0, {int(LOAD_CPU)})
    print(
        f"{EVENTS:,} events; worker and plain loop on core {SERVER_CPU}, one at a time; "
        f"broker (Tansu), Valkey and this script on core {LOAD_CPU}; batch size {BATCH_MAX:,}"
    )
    with tempfile.TemporaryDirectory(prefix="pulse-bench-rollup-") as tmp:
        home = Path(tmp)
        with embedded_broker(home) as bootstrap, embedded_valkey(home) as redis_url:
            settings = Settings(
                kafka_bootstrap_servers=bootstrap, redis_url=redis_url, rollup_batch_max=BATCH_MAX
            )
            migrate_home(home, bootstrap)
            prefill = asyncio.run(_prefill(settings, EVENTS))
            print(
                f"pre-fill: {prefill.events:,} events ({prefill.bytes / 1e6:.1f} MB msgpack) from "
                f"{prefill.tenants} tenants, {prefill.sites} sites, {prefill.visitors:,} visitors into "
                f"{len(prefill.ends)} partitions in {prefill.elapsed_s:.1f} s "
                f"({prefill.events / prefill.elapsed_s:,.0f} events/s, not a measured figure)"
            )
            loops: list[LoopResult] = []
            for round_ in range(1, BASELINE_ROUNDS + 1):
                loops.append(plain_loop_round(bootstrap))
                loop = loops[-1]
                print(
                    f"plain loop round {round_}: {loop.eps:,.0f} events/s "
                    f"({loop.read:,} read, {loop.cpu_ms_per_1000:.1f} CPU ms / 1,000 events)"
                )
            worker = run_worker(home, bootstrap, redis_url, prefill, settings)
            print(
                f"worker: first commit {worker.startup_s:.1f} s after start "
                f"({worker.first_commit_events:,} events), done {worker.total_s:.1f} s after start"
                if worker.finished
                else f"worker: did not finish: {worker.reason}"
            )
            stored = stored_in_clickhouse(home)
            in_redis = counted_in_redis(redis_url)
    report(prefill, loops, worker, stored, in_redis)


def _hist(metrics: dict[str, float], name: str) -> tuple[float, float]:
    """(count, sum) of a histogram, whatever unit suffix the exporter gave it."""
    count = next((v for k, v in metrics.items() if k.startswith(name) and k.endswith("_count")), 0.0)
    total = next((v for k, v in metrics.items() if k.startswith(name) and k.endswith("_sum")), 0.0)
    return count, total


def report(
    prefill: Prefill, loops: list[LoopResult], worker: WorkerRun, stored: Stored, in_redis: int
) -> None:
    n = prefill.events
    loop_eps = statistics.median(r.eps for r in loops)
    loop_cpu = statistics.median(r.cpu_ms_per_1000 for r in loops)
    measured_events = n - worker.first_commit_events
    eps = measured_events / worker.measured_s if worker.finished and worker.measured_s > 0 else 0.0
    total_eps = n / worker.total_s if worker.finished and worker.total_s > 0 else 0.0
    ratio = eps / loop_eps if loop_eps else 0.0
    cpu_ms = worker.cpu_s * 1e6 / measured_events if worker.finished and measured_events else 0.0
    core_share = worker.cpu_s / worker.measured_s if worker.measured_s else 0.0
    batches, batch_events = _hist(worker.metrics, "rollup_batch_events")
    inserts, insert_ms = _hist(worker.metrics, "rollup_insert_latency")
    redis_updates, redis_ms = _hist(worker.metrics, "redis_latency")

    problems = []
    if any(r.read != n for r in loops):
        problems.append(f"the plain loop read {[r.read for r in loops]} events, not {n:,}")
    if any(r.ends != prefill.ends for r in loops):
        problems.append(f"the plain loop ended at {loops[0].ends}, the producer at {prefill.ends}")
    if worker.finished and worker.measured_s <= 0:
        problems.append(f"every event came in the first batch: raise BENCH_EVENTS well above {BATCH_MAX:,}")
    if not worker.finished:
        # What ClickHouse holds then follows from the worker stopping early; it says nothing more.
        problems.append(
            f"the worker did not commit every offset: {worker.reason} (ClickHouse holds {stored.rows:,} rows)"
        )
    else:
        if stored.rows != n:
            problems.append(
                f"ClickHouse holds {stored.rows:,} rows for {n:,} events "
                f"({'duplicates' if stored.rows > n else 'lost events'})"
            )
        if stored.distinct_ids != n:
            problems.append(f"ClickHouse holds {stored.distinct_ids:,} distinct event ids for {n:,} events")
        if stored.pageviews_rolled_up != prefill.pageviews:
            problems.append(
                f"the rollups count {stored.pageviews_rolled_up:,} pageviews, {prefill.pageviews:,} were produced"
            )
        if in_redis != prefill.counted:
            problems.append(
                f"Redis counted {in_redis:,} events, {prefill.counted:,} were produced (engagement aside)"
            )
    valid = not problems

    def verdict(ok: bool) -> str:
        return "pass" if ok else "FAIL"

    def row(name: str, measured: str, target: str = "", ok: bool | None = None) -> None:
        print(f"  {name:<44}{measured:>16}  {target:>10}  {'' if ok is None else verdict(ok)}".rstrip())

    print()
    row("figure", "measured", "target")
    row("worker events/s (first -> last commit)", f"{eps:,.0f}", ">= 50,000", eps >= TARGET_EPS)
    row(f"plain loop events/s (median of {len(loops)})", f"{loop_eps:,.0f}")
    row("ratio worker / plain loop", f"{ratio:.3f}", ">= 0.4", ratio >= TARGET_RATIO)
    row("worker events/s incl. startup", f"{total_eps:,.0f}")
    row("worker startup: start -> first commit (s)", f"{worker.startup_s:.2f}")
    row("CPU ms per 1,000 events: worker / loop", f"{cpu_ms:.1f} / {loop_cpu:.1f}")
    row("worker CPU s: measured / whole run", f"{worker.cpu_s:.1f} / {worker.cpu_total_s:.1f}")
    others_share = worker.others_on_core_s / worker.measured_s if worker.measured_s else 0.0
    row("worker core share (first -> last commit)", f"{core_share:.0%}")
    row("other processes on the worker's core", f"{others_share:.0%}")
    if batches:
        row("batches inserted / mean events per batch", f"{batches:,.0f} / {batch_events / batches:,.0f}")
    # Each step's time per event against the measured wall time per event: its share of the run.
    wall_ms_per_1000 = 1e6 / eps if eps else 0.0
    if inserts and batch_events:
        per_1000 = insert_ms / batch_events * 1000
        row("ClickHouse insert ms per batch (mean)", f"{insert_ms / inserts:.1f}")
        row(
            "ClickHouse insert ms / 1,000 events (share)",
            f"{per_1000:.1f} ({per_1000 / wall_ms_per_1000:.0%})",
        )
    if redis_updates and batch_events:
        per_1000 = redis_ms / batch_events * 1000
        row("Redis live update ms per batch (mean)", f"{redis_ms / redis_updates:.1f}")
        row("Redis update ms / 1,000 events (share)", f"{per_1000:.1f} ({per_1000 / wall_ms_per_1000:.0%})")
    row("wall ms / 1,000 events", f"{wall_ms_per_1000:.1f}")
    row("commits seen (polled every 50 ms)", f"{worker.commits_seen:,}")
    row("ClickHouse rows / distinct ids / expected", f"{stored.rows:,} / {stored.distinct_ids:,} / {n:,}")
    row("rolled-up pageviews / expected", f"{stored.pageviews_rolled_up:,} / {prefill.pageviews:,}")
    row("Redis counted / expected", f"{in_redis:,} / {prefill.counted:,}")
    if worker.threads:
        print("\n  worker CPU by thread, first -> last commit:")
        for name, cpu in sorted(worker.threads.items(), key=lambda item: -item[1])[:6]:
            role = f": {THREAD_ROLES[name]}" if name in THREAD_ROLES else ""
            print(f"  {cpu:8.2f} s {cpu / worker.cpu_s:5.0%}  {name}{role}")
    if worker.warnings:
        print(f"\nworker log: {len(worker.warnings)} warnings or errors, the first:")
        for line in worker.warnings[:5]:
            print(f"  {line[:200]}")
    if worker.finished and core_share < LOW_CORE_SHARE:
        print(
            f"\nnote: the worker used {core_share:.0%} of its core between its first and last commit and "
            f"other processes {others_share:.0%}: the rest it waited (on the broker, Redis or a commit)."
        )
    if others_share > 1 - LOW_CORE_SHARE:
        print(
            f"\nnote: other processes on this machine took {others_share:.0%} of the worker's core during "
            "the measured window; its events/s is lower than on a quiet machine, CPU ms per event is not."
        )
    if PROFILE:
        print(f"\nprofiled with py-spy into {PROFILE}: the figures above are slower than an unprofiled run")
    if not valid:
        print("\n!!! INVALID RUN: " + "; ".join(problems) + ". The figures above are not the worker's. !!!\n")

    figures: dict[str, Any] = {
        "eps": round(eps),
        "baseline_eps": round(loop_eps),
        "ratio": round(ratio, 3),
        "events": n,
        "valid": valid,
        "startup_s": round(worker.startup_s, 2),
        "total_eps": round(total_eps),
        "total_s": round(worker.total_s, 2),
        "measured_s": round(worker.measured_s, 2),
        "worker_cpu_ms_per_1000": round(cpu_ms, 1),
        "baseline_cpu_ms_per_1000": round(loop_cpu, 1),
        "worker_core_share": round(core_share, 2),
        "others_core_share": round(others_share, 2),
        "baseline_rounds_eps": [round(r.eps) for r in loops],
        "batch_max": BATCH_MAX,
        "batches": round(batches),
        "mean_batch": round(batch_events / batches) if batches else None,
        "insert_ms_mean": round(insert_ms / inserts, 1) if inserts else None,
        "redis_ms_mean": round(redis_ms / redis_updates, 1) if redis_updates else None,
        "prefill_s": round(prefill.elapsed_s, 2),
        "clickhouse_rows": stored.rows,
        "redis_counted": in_redis,
        "worker_warnings": len(worker.warnings),
        "worker_thread_cpu_s": {name: round(cpu, 2) for name, cpu in worker.threads.items()},
        "target_eps": TARGET_EPS,
        "target_ratio": TARGET_RATIO,
        "profiled": bool(PROFILE),
    }
    print(json.dumps(figures))
    if not valid:
        raise SystemExit(1)


if __name__ == "__main__":
    if sys.argv[1:] == ["--plain-loop"]:
        plain_loop_main()
    elif sys.argv[1:] == ["--count"]:
        count_main()
    else:
        main()
