"""One typed settings object, read from the environment once per process.

The four service URLs are the switch between the embedded defaults that `pulse up`
starts by itself and the production services a deployment points at.
"""

from __future__ import annotations

import ipaddress
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Literal

import msgspec

from pulse.private_file import read_or_create_token

REPO_ROOT = Path(__file__).resolve().parents[2]


class Settings(msgspec.Struct, frozen=True, kw_only=True):
    home: Path = Path(".pulse")
    kafka_bootstrap_servers: str = ""
    clickhouse_url: str = ""
    clickhouse_database: str = "pulse"
    # A cluster named in the servers' remote_servers: migrations then create Replicated tables on
    # every shard and a Distributed table under each name (warehouse/cluster.py). Empty: one server.
    clickhouse_cluster: str = ""
    redis_url: str = ""
    database_url: str = ""
    secret_key: str = ""

    bind_host: str = "127.0.0.1"
    collector_port: int = 8000
    dashboard_port: int = 8001
    rollup_port: int = 8002
    public_collector_url: str = ""
    public_dashboard_url: str = ""

    kafka_partitions: int = 4
    topic_raw: str = "events.raw"
    topic_replay: str = "events.replay"
    topic_dlq: str = "events.dlq"
    consumer_group: str = "pulse-rollup"
    # Names the topic's incarnation in the offsets ClickHouse keeps (consumed_offsets). Change it
    # when the topic is recreated from empty; `pulse up` sets a new one for each embedded broker.
    kafka_epoch: str = ""
    produce_timeout_s: float = 5.0
    # lz4 costs the collector little CPU and shrinks beacons (repetitive JSON-ish text) 3-5x on the wire.
    produce_compression: Literal["none", "gzip", "snappy", "lz4", "zstd"] = "lz4"
    # Events handed to the producer and not yet acknowledged; past this the collector answers 503
    # instead of queueing without bound while the broker is slow.
    max_in_flight_events: int = 20_000

    max_body_bytes: int = 64 * 1024
    max_batch_events: int = 100
    # Server-side events (POST /api/v1/events) may carry the time they happened: a backend that
    # queued them while Pulse was away can still send a day's worth, and no older, since they would
    # land in sessions and rollups long reported.
    server_event_max_age_s: int = 86_400
    # Peers whose X-Forwarded-For is believed: addresses or CIDR networks (collector/privacy.py).
    trusted_proxies: tuple[str, ...] = ("127.0.0.1", "::1")
    site_cache_ttl_s: float = 30.0
    # Per collector process; 0 turns a limit off. A burst must fit a full batch.
    rate_limit_ip_per_s: float = 50.0
    rate_limit_ip_burst: int = 500
    rate_limit_site_per_s: float = 2_000.0
    rate_limit_site_burst: int = 20_000
    bot_filter: bool = True
    # A MaxMind (GeoLite2/GeoIP2 Country or City) database; without one, countries come from iptocc.
    geoip_database: Path | None = None

    # getmany returns only what is there, so batches grow this big only while catching up; then
    # fewer, larger ClickHouse inserts cost 35% less per event than batches of 5,000 (bench/rollup).
    rollup_batch_max: int = 20_000
    rollup_poll_ms: int = 200
    # The broker may hold a fetch this long waiting for data: it bounds beacon-to-screen latency.
    rollup_fetch_wait_ms: int = 20
    # Resent copies of an event (same sender id) are counted once when they arrive within this
    # window of the first; it covers the tracker's resend (10 s) and load balancer retries with
    # room to spare. Past max_ids remembered ids (16 bytes each, ~90 B with the set) it shrinks.
    rollup_resend_window_s: float = 300.0
    rollup_resend_max_ids: int = 2_000_000
    # A dependency (broker, ClickHouse, Redis) that failed three calls in a row is not asked again
    # for this long: requests get their 503 or fallback at once instead of each waiting a timeout.
    breaker_open_s: float = 5.0
    # After SIGTERM, how long requests in flight may take before they are cut.
    shutdown_grace_s: int = 8
    # How often an idle worker looks for a replay asked for with `pulse replay`, and how long a
    # replay's worker may go silent before another worker takes it over.
    replay_poll_s: float = 2.0
    replay_stale_s: float = 30.0
    # How long a process routes by what it read of which tenants have a ClickHouse database of their
    # own, before reading it again (one small OLTP query). `pulse tenant isolate` waits this long,
    # and a margin, before it moves the tenant's past events: by then every worker writes its new ones
    # to the tenant's database.
    tenant_database_cache_s: float = 2.0
    # Stats queries the rollups can answer are read from them (pulse.stats.rollup_plan); off, every
    # one is read from raw events, as benchmarks compare.
    stats_rollups: bool = True
    # The dashboard folds each site's past UTC days of this many before a page needs them
    # (pulse.stats.prefold), looking again this often; 0 days leaves every fold to the pages.
    # 62: a month and the month before it, which the overview compares with.
    prefold_days: int = 62
    prefold_every_s: float = 300.0
    # An overview read in this many seconds or more refreshes on a timer (at most every minute, at
    # most a tenth of the time) rather than after live ticks: one viewer of a view the rollups cannot
    # answer would otherwise keep the warehouse busy.
    # Embedded, a page's reads share chDB's cores with the worker's inserts: the demo's overview
    # took 0.7-3.3 s on a few hundred events when they also queued on one chDB handle, and must
    # stay live.
    overview_slow_s: float = 5.0

    metrics_enabled: bool = True
    otel_exporter_otlp_endpoint: str = ""

    jwt_ttl_s: int = 8 * 3600
    jwt_issuer: str = "pulse"
    jwt_audience: str = "pulse"
    # An API key is exchanged for a token this short-lived, so its holder comes back for a new one
    # (and finds the key revoked) often, and a leaked token is worth little.
    api_token_ttl_s: int = 900
    # A new JWT signing key this often, made by whichever process next issues a token.
    jwt_key_rotation_s: int = 86_400
    # How long a process believes what it read about signing keys, tenants and API keys, instead of
    # a query per request: every replica refuses a revoked API key's tokens within this many seconds.
    auth_cache_s: float = 5.0
    # Requests per minute per API key or signed-in user on /api/, counted in Redis across replicas
    # (per replica while Redis is down); 0 turns the limit off.
    api_rate_limit_per_min: int = 600
    # Token requests and logins per minute per client IP, per replica: slows password guessing.
    # A minute's worth may come at once.
    login_rate_limit_per_min: int = 30
    cookie_secure: bool = False

    ui_dir: Path = REPO_ROOT / "ui"
    # The committed build of tracker-js/src/p.js (npm run build in tracker-js).
    tracker_path: Path = REPO_ROOT / "tracker-js" / "dist" / "p.js"
    migrations_dir: Path = REPO_ROOT / "migrations"

    @property
    def effective_clickhouse_url(self) -> str:
        return self.clickhouse_url or f"chdb://{(self.home / 'clickhouse').resolve()}"

    @property
    def effective_database_url(self) -> str:
        return self.database_url or f"sqlite+aiosqlite:///{(self.home / 'pulse.db').resolve()}"

    @property
    def collector_url(self) -> str:
        return self.public_collector_url or f"http://{self.bind_host}:{self.collector_port}"

    @property
    def dashboard_url(self) -> str:
        return self.public_dashboard_url or f"http://{self.bind_host}:{self.dashboard_port}"


# Names read without the PULSE_ prefix, because every tool in this space uses them.
_UNPREFIXED = (
    "kafka_bootstrap_servers",
    "clickhouse_url",
    "redis_url",
    "database_url",
    "otel_exporter_otlp_endpoint",
)


def load_settings(environ: Mapping[str, str] | None = None) -> Settings:
    """Build settings from the environment; invalid values fail with the variable named."""
    env = os.environ if environ is None else environ
    raw: dict[str, object] = {}
    for name in Settings.__struct_fields__:
        key = name.upper() if name in _UNPREFIXED else f"PULSE_{name.upper()}"
        if key in env:
            value: object = env[key]
            if name == "trusted_proxies":
                value = _trusted_proxies(env[key])
            raw[name] = value
    try:
        settings = msgspec.convert(raw, Settings, strict=False, dec_hook=_decode_path)
    except msgspec.ValidationError as exc:
        raise SystemExit(f"invalid configuration: {exc}") from exc
    if not settings.secret_key:
        # Kept in PULSE_HOME so sessions and visitor ids survive restarts.
        secret = read_or_create_token(settings.home / "secret.key", 48)
        settings = msgspec.structs.replace(settings, secret_key=secret)
    return settings


def _trusted_proxies(text: str) -> tuple[str, ...]:
    """Addresses or CIDR networks: a typo stops the process instead of silently trusting nobody."""
    proxies = tuple(p.strip() for p in text.split(",") if p.strip())
    for proxy in proxies:
        try:
            ipaddress.ip_network(proxy, strict=False)
        except ValueError as exc:
            raise SystemExit(f"invalid configuration: PULSE_TRUSTED_PROXIES: {exc}") from exc
    return proxies


def _decode_path(kind: type, value: object) -> object:
    if kind is Path and isinstance(value, str):
        return Path(value)
    raise NotImplementedError(f"cannot read {kind} from the environment")
