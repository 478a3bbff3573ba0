"""docker-compose.yml and its small-server override, validated by the real docker-compose binary,
and the HAProxy configuration in front of the replicas, validated and run by the real haproxy.

`docker-compose config` resolves anchors, merge keys, overrides and variables exactly as a
deployment would; the resolved file is then checked against pulse.settings, haproxy.cfg, the
Prometheus scrape configuration and the Grafana provisioning.
"""

from __future__ import annotations

import csv
import ipaddress
import re
import shutil
import subprocess
import sys
import threading
import time
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterator, Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import msgspec
import pytest
import yaml

from pulse.collector.privacy import TrustedProxies, client_ip
from pulse.dashboard.live import KEEPALIVE_S
from pulse.embedded.services import free_port
from pulse.settings import Settings, load_settings

REPO = Path(__file__).resolve().parents[1]
COMPOSE_FILE = REPO / "docker-compose.yml"
SMALL_FILE = REPO / "docker-compose.small.yml"
HAPROXY_CFG = REPO / "deploy" / "haproxy" / "haproxy.cfg"
CLICKHOUSE_SMALL_CONFIG = REPO / "deploy" / "clickhouse" / "low-memory.xml"
CLICKHOUSE_SMALL_USERS = REPO / "deploy" / "clickhouse" / "low-memory-users.xml"
PROMETHEUS_FILE = REPO / "grafana" / "prometheus" / "prometheus.yml"
DATASOURCES_FILE = REPO / "grafana" / "provisioning" / "datasources" / "datasources.yml"
DASHBOARDS_FILE = REPO / "grafana" / "provisioning" / "dashboards" / "dashboards.yml"

SECRET = "test-secret-key-for-compose-config-only"

ROLES = ("collector", "rollup", "dashboard")
# Each role runs as two replicas, written once (a YAML anchor) and named <role>-1, <role>-2.
REPLICAS = {role: (f"{role}-1", f"{role}-2") for role in ROLES}
ROLE_SERVICES = tuple(name for pair in REPLICAS.values() for name in pair)
PULSE_SERVICES = ("migrate", *ROLE_SERVICES)
# The roles haproxy balances; the rollup workers share the load through their consumer group.
BALANCED = ("collector", "dashboard")
BACKING = ("redpanda", "clickhouse", "redis", "postgres")
CONNECT_SERVICES = ("connect-events", "connect-archive")
EXPECTED_SERVICES = {*BACKING, "prometheus", "grafana", "haproxy", *PULSE_SERVICES, *CONNECT_SERVICES}

# What each role talks to (ARCHITECTURE.md): it must not start before these are healthy.
ROLE_BACKING: dict[str, set[str]] = {
    "collector": {"redpanda", "redis", "postgres"},
    "rollup": {"redpanda", "clickhouse", "redis"},
    "dashboard": {"clickhouse", "redis", "postgres"},
}
MIGRATE_BACKING = {"clickhouse", "postgres"}

# Settings fields read without the PULSE_ prefix (documented in pulse.settings).
UNPREFIXED = ("kafka_bootstrap_servers", "clickhouse_url", "redis_url", "database_url")

Config = dict[str, Any]
ComposeEnv = tuple[dict[str, str], Path]


def _docker_compose() -> str:
    exe = shutil.which("docker-compose")
    if exe is None:
        pytest.fail(
            "docker-compose is not on PATH: install Debian's docker-compose "
            "(apt-get install -y docker-compose) to validate docker-compose.yml"
        )
    return exe


def _run_compose(
    args: list[str], env: Mapping[str, str], env_file: Path, files: tuple[Path, ...] = (COMPOSE_FILE,)
) -> subprocess.CompletedProcess[str]:
    # --env-file and a minimal environment: neither a developer's .env nor their
    # exported variables may change what is validated.
    return subprocess.run(
        [_docker_compose(), "--env-file", str(env_file), *(f"-f{file}" for file in files), *args],
        cwd=REPO,
        env=dict(env),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def _resolve(env: Mapping[str, str], env_file: Path, files: tuple[Path, ...]) -> Config:
    quiet = _run_compose(["config", "-q"], env, env_file, files)
    assert quiet.returncode == 0, f"docker-compose config -q failed:\n{quiet.stderr}"
    full = _run_compose(["config"], env, env_file, files)
    assert full.returncode == 0, full.stderr
    config = yaml.safe_load(full.stdout)
    assert isinstance(config, dict)
    return config


@pytest.fixture(scope="module")
def compose_env(tmp_path_factory: pytest.TempPathFactory) -> ComposeEnv:
    tmp = tmp_path_factory.mktemp("compose")
    env_file = tmp / "empty.env"
    env_file.write_text("")
    env = {"PATH": "/usr/local/bin:/usr/bin:/bin", "HOME": str(tmp), "PULSE_SECRET_KEY": SECRET}
    return env, env_file


@pytest.fixture(scope="module")
def compose(compose_env: ComposeEnv) -> Config:
    return _resolve(*compose_env, (COMPOSE_FILE,))


@pytest.fixture(scope="module")
def small(compose_env: ComposeEnv) -> dict[str, Config]:
    """The services as `docker-compose -f docker-compose.yml -f docker-compose.small.yml` runs them."""
    result: dict[str, Config] = _resolve(*compose_env, (COMPOSE_FILE, SMALL_FILE))["services"]
    return result


@pytest.fixture(scope="module")
def services(compose: Config) -> dict[str, Config]:
    result: dict[str, Config] = compose["services"]
    return result


def _load_yaml(path: Path) -> Config:
    data = yaml.safe_load(path.read_text())
    assert isinstance(data, dict), f"{path} is not a YAML mapping"
    return data


def _env_key(field: str) -> str:
    return field.upper() if field in UNPREFIXED else f"PULSE_{field.upper()}"


def _settings_keys() -> dict[str, str]:
    """Environment variable name -> Settings field, as load_settings reads them."""
    return {_env_key(name): name for name in Settings.__struct_fields__}


def _role_port(service: Config, role: str) -> int:
    return int(service["environment"][f"PULSE_{role.upper()}_PORT"])


def _mounts(service: Config) -> dict[str, str]:
    """Container path -> source for bind mounts and volumes (short or long syntax)."""
    result: dict[str, str] = {}
    for volume in service.get("volumes", []):
        if isinstance(volume, str):
            source, target = volume.split(":")[:2]
        else:
            source, target = volume["source"], volume["target"]
        result[target] = source
    return result


def _published_targets(service: Config) -> set[int]:
    return set(_published(service).values())


def _published(service: Config) -> dict[int, int]:
    """Host port -> container port."""
    ports: dict[int, int] = {}
    for port in service.get("ports", []):
        assert isinstance(port, dict), "docker-compose config writes ports in the long syntax"
        ports[int(port["published"])] = int(port["target"])
    return ports


def _memory_bytes(value: object) -> int:
    """A compose memory size (bytes, or a number with b, k, m or g), 1024-based as Docker reads it."""
    match = re.fullmatch(r"(\d+)([bkmg]?)b?", str(value).strip().lower())
    assert match, f"not a memory size: {value!r}"
    return int(match.group(1)) * 1024 ** "bkmg".index(match.group(2) or "b")


def _replicas(service: Config) -> int:
    return int(service.get("deploy", {}).get("replicas", service.get("scale", 1)))


def _bind_port(bind: str) -> int:
    return int(bind.rsplit(":", 1)[1])


def _haproxy_sections() -> dict[str, list[list[str]]]:
    """haproxy.cfg as section header -> its directives, each split into words, comments dropped."""
    sections: dict[str, list[list[str]]] = {}
    current: list[list[str]] = []
    for line in HAPROXY_CFG.read_text().splitlines():
        words = line.split("#", 1)[0].split()
        if not words:
            continue
        if line[0].isspace():
            current.append(words)
        else:
            current = sections.setdefault(" ".join(words), [])
    return sections


def _haproxy_variables() -> dict[str, bool]:
    """Environment variables haproxy.cfg expands -> whether the file gives a default."""
    text = "\n".join(line.split("#", 1)[0] for line in HAPROXY_CFG.read_text().splitlines())
    return {name: bool(default) for name, default in re.findall(r"\$\{(\w+)(-[^}]*)?\}", text)}


def _directive(section: list[list[str]], *words: str) -> list[str]:
    """The arguments of the one directive in a section starting with these words."""
    found = [d[len(words) :] for d in section if d[: len(words)] == list(words)]
    assert len(found) == 1, f"expected one {' '.join(words)!r}, found {found}"
    return found[0]


def _unquote(word: str) -> str:
    return word.strip('"')


# ----------------------------------------------------------------- the compose file


def test_secret_key_is_required(compose_env: ComposeEnv) -> None:
    env, env_file = compose_env
    without = {k: v for k, v in env.items() if k != "PULSE_SECRET_KEY"}
    result = _run_compose(["config", "-q"], without, env_file)
    assert result.returncode != 0
    assert "PULSE_SECRET_KEY" in result.stderr


def test_expected_services(services: dict[str, Config]) -> None:
    assert set(services) == EXPECTED_SERVICES


def test_pulse_services_build_one_image_from_the_dockerfile(services: dict[str, Config]) -> None:
    assert (REPO / "Dockerfile").is_file()
    assert (REPO / ".dockerignore").is_file()
    images = set()
    for name in PULSE_SERVICES:
        build = services[name]["build"]
        assert Path(build["context"]).resolve() == REPO, name
        assert build.get("dockerfile", "Dockerfile") == "Dockerfile", name
        images.add(services[name]["image"])
    assert len(images) == 1, f"the Pulse services should share one image tag, got {images}"
    assert services["migrate"]["command"] == ["migrate"]
    for role, names in REPLICAS.items():
        for name in names:
            assert services[name]["command"] == ["run", role], name


def test_replicas_of_a_role_are_the_same_service(services: dict[str, Config]) -> None:
    """Written once: nothing but the name tells the two replicas of a role apart."""
    for role, (first, second) in REPLICAS.items():
        assert services[first] == services[second], role
        assert "container_name" not in services[first], "a fixed name would forbid --scale"


def test_dockerfile_runs_pulse_as_non_root() -> None:
    text = (REPO / "Dockerfile").read_text()
    assert re.search(r"^FROM python:3\.12-slim", text, re.MULTILINE)
    assert re.search(r"pip install \"?uv", text)
    assert "uv sync --frozen --no-dev" in text
    users = re.findall(r"^USER\s+(\S+)", text, re.MULTILINE)
    assert users, "the image must switch to a non-root user"
    assert users[-1] not in {"root", "0"}
    assert re.search(r'^ENTRYPOINT \["pulse"\]', text, re.MULTILINE)


def test_roles_have_healthchecks_on_their_own_port(services: dict[str, Config]) -> None:
    defaults = Settings()
    for role, names in REPLICAS.items():
        for name in names:
            service = services[name]
            port = _role_port(service, role)
            assert port == getattr(defaults, f"{role}_port"), f"{name} port differs from the Settings default"
            test = service["healthcheck"]["test"]
            assert test[0] in {"CMD", "CMD-SHELL"}, name
            command = " ".join(test[1:])
            # slim images have no curl: the healthcheck is the venv's python
            assert "python" in command
            assert "urllib" in command
            assert f"http://127.0.0.1:{port}/healthz" in command, name
            assert str(port) in {str(p) for p in service.get("expose", [])}, name


def test_only_haproxy_publishes_the_pulse_ports(services: dict[str, Config]) -> None:
    haproxy = services["haproxy"]
    env = haproxy["environment"]
    pulse_env = services["collector-1"]["environment"]
    published = _published(haproxy)
    for role in BALANCED:
        port = _role_port(services[f"{role}-1"], role)
        public = urlsplit(pulse_env[f"PULSE_PUBLIC_{role.upper()}_URL"])
        # The public URL's port is haproxy's, which listens where the role's frontend binds.
        assert public.port == port, role
        assert published[port] == _bind_port(env[f"PULSE_LB_{role.upper()}_BIND"]), role
    assert set(published) == {_role_port(services[f"{r}-1"], r) for r in BALANCED}
    pulse_ports = {_role_port(services[REPLICAS[r][0]], r) for r in ROLES}
    for name, service in services.items():
        if name != "haproxy":
            assert not set(_published(service)) & pulse_ports, f"{name} publishes a Pulse port"
    for name in ROLE_SERVICES:
        # Unpublished, so `--scale` does not fight over a host port.
        assert not _published(services[name]), name
    # The stats frontend stays inside the network, for Prometheus.
    stats = _bind_port(env["PULSE_LB_STATS_BIND"])
    assert stats not in published.values()
    assert str(stats) in {str(p) for p in haproxy["expose"]}


def test_roles_wait_for_migrate_and_their_backing_services(services: dict[str, Config]) -> None:
    for role, backing in ROLE_BACKING.items():
        for name in REPLICAS[role]:
            depends = services[name]["depends_on"]
            assert depends["migrate"]["condition"] == "service_completed_successfully", name
            for dep in backing:
                assert dep in depends, f"{name} must depend on {dep}"
                assert depends[dep]["condition"] == "service_healthy", (name, dep)
    migrate = services["migrate"]
    assert str(migrate["restart"]) in {"no", "False", "false"}
    assert "healthcheck" not in migrate
    for name in MIGRATE_BACKING:
        assert migrate["depends_on"][name]["condition"] == "service_healthy"
    # haproxy starts once every replica it balances can serve
    balanced = {name for role in BALANCED for name in REPLICAS[role]}
    depends = services["haproxy"]["depends_on"]
    assert set(depends) == balanced
    assert {spec["condition"] for spec in depends.values()} == {"service_healthy"}
    # every service_healthy dependency must have a healthcheck to become healthy with
    for name, service in services.items():
        for dep, spec in service.get("depends_on", {}).items():
            if spec["condition"] == "service_healthy":
                assert "healthcheck" in services[dep], f"{name} waits for {dep}, which has no healthcheck"


def test_restart_policies_and_resource_limits(services: dict[str, Config]) -> None:
    for name, service in services.items():
        limits = service.get("deploy", {}).get("resources", {}).get("limits", {})
        assert service.get("mem_limit") or limits.get("memory"), f"{name} has no memory limit"
        assert service.get("cpus") or limits.get("cpus"), f"{name} has no CPU limit"
        if name != "migrate":
            assert service["restart"] in {"always", "unless-stopped"}, name
            assert "healthcheck" in service, f"{name} has no healthcheck"


def test_pulse_environment_is_what_settings_reads(services: dict[str, Config]) -> None:
    known = _settings_keys()
    envs = [services[name]["environment"] for name in PULSE_SERVICES]
    assert all(env == envs[0] for env in envs), "all Pulse services should share x-pulse-env"
    env: dict[str, str] = {k: str(v) for k, v in envs[0].items()}
    unknown = sorted(set(env) - set(known))
    assert not unknown, f"not read by pulse.settings.load_settings: {unknown}"
    for required in (
        "KAFKA_BOOTSTRAP_SERVERS",
        "CLICKHOUSE_URL",
        "PULSE_CLICKHOUSE_DATABASE",
        "REDIS_URL",
        "DATABASE_URL",
        "PULSE_SECRET_KEY",
        "PULSE_BIND_HOST",
        "PULSE_PUBLIC_COLLECTOR_URL",
        "PULSE_PUBLIC_DASHBOARD_URL",
        "PULSE_KAFKA_PARTITIONS",
        "PULSE_TRUSTED_PROXIES",
    ):
        assert required in env, required
    assert env["PULSE_SECRET_KEY"] == SECRET
    assert env["PULSE_BIND_HOST"] == "0.0.0.0"  # noqa: S104 - containers must listen beyond loopback

    # The values load: load_settings reads every one of them into its field.
    settings = load_settings(env)
    for key, value in env.items():
        field = known[key]
        if field == "trusted_proxies":
            expected: object = tuple(p.strip() for p in value.split(",") if p.strip())
        else:
            expected = msgspec.convert(value, type(getattr(Settings(), field)), strict=False)
        assert getattr(settings, field) == expected, key


def test_collectors_trust_haproxys_address_and_nothing_else_on_the_network(
    compose: Config, services: dict[str, Config]
) -> None:
    (ipam,) = compose["networks"]["default"]["ipam"]["config"]
    subnet = ipaddress.ip_network(ipam["subnet"])
    dynamic = ipaddress.ip_network(ipam["ip_range"])
    address = ipaddress.ip_address(services["haproxy"]["networks"]["default"]["ipv4_address"])
    assert address in subnet
    # Docker hands out dynamic addresses from ip_range only: no container can take haproxy's.
    assert address not in dynamic
    assert dynamic.subnet_of(subnet)
    for name, service in services.items():
        if name != "haproxy":
            assert "ipv4_address" not in str(service.get("networks", {})), name

    settings = load_settings({k: str(v) for k, v in services["collector-1"]["environment"].items()})
    trusted = TrustedProxies(settings.trusted_proxies)
    assert trusted.peer(str(address))
    for other in (next(dynamic.hosts()), dynamic.broadcast_address - 1, subnet.network_address + 1):
        assert not trusted.peer(str(other)), f"{other} is another container or the gateway"


def test_service_urls_point_at_compose_services(services: dict[str, Config]) -> None:
    env = services["collector-1"]["environment"]
    assert env["KAFKA_BOOTSTRAP_SERVERS"].split(":")[0] == "redpanda"
    assert "--advertise-kafka-addr=redpanda:9092" in services["redpanda"]["command"]

    clickhouse = urlsplit(env["CLICKHOUSE_URL"])
    assert (clickhouse.scheme, clickhouse.hostname, clickhouse.port) == ("http", "clickhouse", 8123)
    ch_env = services["clickhouse"]["environment"]
    assert clickhouse.username == ch_env["CLICKHOUSE_USER"]
    assert clickhouse.password == ch_env["CLICKHOUSE_PASSWORD"]
    assert env["PULSE_CLICKHOUSE_DATABASE"] == ch_env["CLICKHOUSE_DB"]

    postgres = urlsplit(env["DATABASE_URL"])
    pg_env = services["postgres"]["environment"]
    assert postgres.scheme.startswith("postgresql")
    assert (postgres.hostname, postgres.port) == ("postgres", 5432)
    assert postgres.username == pg_env["POSTGRES_USER"]
    assert postgres.password == pg_env["POSTGRES_PASSWORD"]
    assert postgres.path == f"/{pg_env['POSTGRES_DB']}"

    redis = urlsplit(env["REDIS_URL"])
    assert (redis.scheme, redis.hostname, redis.port) == ("redis", "redis", 6379)


def test_redpanda_runs_as_a_single_dev_node(services: dict[str, Config]) -> None:
    command = services["redpanda"]["command"]
    for flag in ("--mode=dev-container", "--smp=1", "--memory=1G", "--overprovisioned"):
        assert flag in command


def test_redis_is_a_cache_without_persistence(services: dict[str, Config]) -> None:
    command = services["redis"]["command"]
    assert command[command.index("--save") + 1] == ""
    assert command[command.index("--appendonly") + 1] == "no"
    assert "volumes" not in services["redis"]


# ----------------------------------------------------------------- haproxy.cfg


def _haproxy() -> str:
    exe = shutil.which("haproxy") or ("/usr/sbin/haproxy" if Path("/usr/sbin/haproxy").is_file() else None)
    if exe is None:
        pytest.skip("haproxy is not installed: make test installs Debian's haproxy (scripts/setup.sh --test)")
    return exe


def _haproxy_check(env: Mapping[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [_haproxy(), "-c", "-f", str(HAPROXY_CFG)],
        env={"PATH": "/usr/bin:/bin", **env},
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )


def test_haproxy_gets_its_config_and_every_variable_it_expands(services: dict[str, Config]) -> None:
    haproxy = services["haproxy"]
    assert haproxy["image"].startswith("haproxy:2.6")
    volume = next(v for v in haproxy["volumes"] if ":/usr/local/etc/haproxy/haproxy.cfg" in str(v))
    assert volume == f"{HAPROXY_CFG}:/usr/local/etc/haproxy/haproxy.cfg:ro"
    variables = _haproxy_variables()
    env = set(haproxy["environment"])
    required = {name for name, has_default in variables.items() if not has_default}
    assert required <= env, f"haproxy.cfg needs {sorted(required - env)}"
    assert env <= set(variables), f"haproxy.cfg never reads {sorted(env - set(variables))}"


def test_haproxy_servers_are_the_replicas_on_their_ports(services: dict[str, Config]) -> None:
    sections = _haproxy_sections()
    env = services["haproxy"]["environment"]
    for role in BALANCED:
        backend = sections[f"backend {role}s"]
        servers = {d[1]: d[2] for d in backend if d[0] == "server"}
        assert set(servers) == set(REPLICAS[role]), role
        for name, address in servers.items():
            variable = re.fullmatch(r'"\$\{(\w+)\}"', address)
            assert variable, f"{name}: {address} is not one variable"
            port = _role_port(services[name], role)
            assert env[variable.group(1)] == f"{name}:{port}", name
        assert _directive(backend, "option", "httpchk") == ["GET", "/healthz"]
        frontend = sections[f"frontend {role}"]
        bind = _directive(frontend, "bind")
        assert bind == [f'"${{PULSE_LB_{role.upper()}_BIND}}"']
        assert _directive(frontend, "default_backend") == [f"{role}s"]


def test_haproxy_timeouts_health_checks_and_retries(services: dict[str, Config]) -> None:
    sections = _haproxy_sections()
    defaults = sections["defaults"]
    server = _directive(defaults, "default-server")
    assert "check" in server
    inter, fall = server[server.index("inter") + 1], int(server[server.index("fall") + 1])
    assert inter.endswith("s")
    assert int(inter[:-1]) * fall <= 2, "a dead replica must leave rotation within ~2 s"
    init = server[server.index("init-addr") + 1].split(",")
    assert init[-1] == "none", "a name that does not resolve yet must not stop haproxy"
    assert server[server.index("resolvers") + 1] in {
        s.split()[1] for s in sections if s.startswith("resolvers")
    }

    collectors = sections["backend collectors"]
    retry_on = set(_directive(collectors, "retry-on"))
    assert {"conn-failure", "empty-response", "response-timeout", "503"} <= retry_on
    assert int(_directive(collectors, "retries")[0]) >= 2
    assert _directive(collectors, "option", "redispatch") == ["1"]
    assert _directive(collectors, "option", "forwardfor") == []
    assert _directive(collectors, "option", "http-buffer-request") == [], "a request is replayed only whole"
    # Only a hung collector reaches the server timeout, not one waiting out its broker.
    produce_timeout = msgspec.convert(
        services["collector-1"]["environment"].get("PULSE_PRODUCE_TIMEOUT_S", Settings().produce_timeout_s),
        float,
        strict=False,
    )
    assert int(_directive(collectors, "timeout", "server")[0].removesuffix("s")) > produce_timeout

    dashboards = sections["backend dashboards"]
    assert _directive(dashboards, "balance") == ["leastconn"]
    assert _directive(dashboards, "retry-on") == ["conn-failure"], "logins and form posts are not idempotent"
    # A live-view stream is silent between ticks for at most KEEPALIVE_S: no timeout may cut it.
    for timeout in (
        _directive(dashboards, "timeout", "server")[0],
        _directive(sections["frontend dashboard"], "timeout", "client")[0],
    ):
        seconds = int(timeout[:-1]) * {"s": 1, "m": 60, "h": 3600}[timeout[-1]]
        assert seconds >= 2 * KEEPALIVE_S, timeout


def test_haproxy_check_accepts_the_shipped_config_with_composes_environment(
    services: dict[str, Config],
) -> None:
    env = {k: str(v) for k, v in services["haproxy"]["environment"].items()}
    result = _haproxy_check(env)
    assert result.returncode == 0, result.stdout + result.stderr
    # The replica names do not resolve here, and that is no reason to refuse to start.
    assert "could not resolve address 'collector-1'" in result.stderr
    variables = _haproxy_variables()
    for name in env:
        if not variables[name]:
            missing = _haproxy_check({k: v for k, v in env.items() if k != name})
            assert missing.returncode != 0, f"haproxy -c passes without {name}"


class _QuietServer(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: object, client_address: object) -> None:
        """HAProxy's health checks hang up as soon as they have read the status line."""


class _Replica:
    """A stand-in for one collector or dashboard replica, on a free loopback port.

    It answers every GET (/healthz among them) with its name, accepts POSTs (refusing the next
    `refuse` of them with a 503), and streams /live as Server-Sent Events: a first event at
    once, a second once `release` is set.
    Every response closes its connection, so stopping the server takes the replica away whole.
    """

    def __init__(self, name: str) -> None:
        self.name = name
        self.forwarded_for: list[list[str]] = []
        self.refuse = 0
        self.refused = 0
        self.release = threading.Event()
        replica = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: object) -> None:
                pass

            def _answer(self, status: int, body: bytes) -> None:
                self.send_response(status)
                self.send_header("content-length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_GET(self) -> None:
                if self.path != "/live":
                    self._answer(200, replica.name.encode())
                    return
                self.send_response(200)
                self.send_header("content-type", "text/event-stream")
                self.end_headers()
                self.wfile.write(b"data: first\n\n")
                self.wfile.flush()
                replica.release.wait(10)
                self.wfile.write(b"data: second\n\n")

            def do_POST(self) -> None:
                self.rfile.read(int(self.headers.get("content-length", "0")))
                replica.forwarded_for.append(self.headers.get_all("x-forwarded-for") or [])
                if replica.refuse:
                    replica.refuse -= 1
                    replica.refused += 1
                    self._answer(503, b'{"error": "overloaded"}')
                    return
                self._answer(202, replica.name.encode())

        self.port = free_port()
        self.server = _QuietServer(("127.0.0.1", self.port), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        self.release.set()
        self.server.shutdown()
        self.server.server_close()


class _Balancer:
    def __init__(self, replicas: dict[str, _Replica], ports: dict[str, int]) -> None:
        self.replicas = replicas
        self.collector = f"http://127.0.0.1:{ports['collector']}"
        self.dashboard = f"http://127.0.0.1:{ports['dashboard']}"
        self.stats = f"http://127.0.0.1:{ports['stats']}"
        self.stats_port = ports["stats"]

    def states(self) -> dict[str, str]:
        """Server name -> HAProxy's status for it (UP, DOWN, MAINT ...)."""
        text = httpx.get(f"{self.stats}/stats;csv", timeout=2).text.removeprefix("# ")
        return {
            row["svname"]: row["status"]
            for row in csv.DictReader(text.splitlines())
            if row["svname"] in self.replicas
        }

    def wait_for(self, condition: Callable[[], bool], what: str, timeout_s: float) -> float:
        """Seconds until condition() held; fails after timeout_s."""
        start = time.monotonic()
        while not condition():
            assert time.monotonic() - start < timeout_s, f"{what} not within {timeout_s} s: {self.states()}"
            time.sleep(0.05)
        return time.monotonic() - start


@pytest.fixture
def balancer(tmp_path: Path) -> Iterator[_Balancer]:
    """Debian's haproxy with the shipped haproxy.cfg on loopback, in front of stand-in replicas."""
    exe = _haproxy()
    replicas = {name: _Replica(name) for role in BALANCED for name in REPLICAS[role]}
    ports = {"collector": free_port(), "dashboard": free_port(), "stats": free_port()}
    env = {
        "PATH": "/usr/bin:/bin",
        "PULSE_LB_COLLECTOR_BIND": f"127.0.0.1:{ports['collector']}",
        "PULSE_LB_DASHBOARD_BIND": f"127.0.0.1:{ports['dashboard']}",
        "PULSE_LB_STATS_BIND": f"127.0.0.1:{ports['stats']}",
        **{f"PULSE_{name.upper().replace('-', '_')}": f"127.0.0.1:{r.port}" for name, r in replicas.items()},
    }
    assert {k for k in env if k != "PATH"} >= {n for n, d in _haproxy_variables().items() if not d}
    log = (tmp_path / "haproxy.log").open("w")
    process = subprocess.Popen([exe, "-f", str(HAPROXY_CFG)], env=env, stdout=log, stderr=subprocess.STDOUT)
    balancer = _Balancer(replicas, ports)
    try:

        def all_up() -> bool:
            if process.poll() is not None:
                pytest.fail(f"haproxy exited: {(tmp_path / 'haproxy.log').read_text()}")
            try:
                return set(balancer.states().values()) == {"UP"}
            except httpx.HTTPError:
                return False

        balancer.wait_for(all_up, "every replica in rotation", 10)
        yield balancer
    finally:
        process.terminate()
        process.wait(timeout=10)
        log.close()
        for replica in replicas.values():
            replica.stop()


def _compose_healthcheck(services: dict[str, Config], stats_port: int) -> subprocess.CompletedProcess[str]:
    """haproxy's healthcheck from docker-compose.yml, run here against the stats port given."""
    test = services["haproxy"]["healthcheck"]["test"]
    assert test[0] == "CMD"
    compose_port = _bind_port(services["haproxy"]["environment"]["PULSE_LB_STATS_BIND"])
    command = [arg.replace(f"/{compose_port} ", f"/{stats_port} ") for arg in test[1:]]
    assert command != test[1:], "the healthcheck does not ask the stats port"
    return subprocess.run(command, capture_output=True, text=True, timeout=10, check=False)


@pytest.mark.serial  # a dead replica must leave rotation within seconds
def test_haproxy_balances_retries_and_streams(balancer: _Balancer, services: dict[str, Config]) -> None:
    replicas = balancer.replicas
    assert httpx.get(f"{balancer.stats}/healthz").status_code == 200
    assert "haproxy_server_status" in httpx.get(f"{balancer.stats}/metrics").text
    assert _compose_healthcheck(services, balancer.stats_port).returncode == 0

    # The visitor comes from 127.0.0.2, haproxy from 127.0.0.1: loopback has room for both.
    visitor = httpx.HTTPTransport(local_address="127.0.0.2")
    with httpx.Client(base_url=balancer.collector, timeout=10, transport=visitor) as client:
        # Round robin over both collectors. The visitor's forged header stays where it was
        # written, left of the address haproxy saw, and the collector's rule finds the visitor.
        answers = [
            client.post("/api/event", content=b"{}", headers={"x-forwarded-for": "203.0.113.66"})
            for _ in range(10)
        ]
        assert {a.status_code for a in answers} == {202}
        assert {a.text for a in answers} == {"collector-1", "collector-2"}
        for replica in (replicas["collector-1"], replicas["collector-2"]):
            for lines in replica.forwarded_for:
                assert lines == ["203.0.113.66", "127.0.0.2"]
                assert client_ip("127.0.0.1", ",".join(lines), TrustedProxies(["127.0.0.1"])) == "127.0.0.2"

        # A 503 goes to the other replica, and back, until one accepts.
        replicas["collector-1"].refuse = replicas["collector-2"].refuse = 1
        assert client.post("/api/event", content=b"{}").status_code == 202
        assert replicas["collector-1"].refused + replicas["collector-2"].refused == 2

        # A replica that dies leaves rotation within about two seconds, and no beacon sent
        # meanwhile is lost: the ones that reach it are retried on the other.
        replicas["collector-2"].stop()
        gone = time.monotonic()
        statuses = set()
        out_after: float | None = None
        while time.monotonic() - gone < 4:
            statuses.add(client.post("/api/event", content=b"{}").status_code)
            if out_after is None and balancer.states()["collector-2"].startswith("DOWN"):
                out_after = time.monotonic() - gone
        assert statuses == {202}
        assert out_after is not None
        assert out_after < 3.5, f"collector-2 left rotation after {out_after:.1f} s"

    # The live view's first event arrives while the response is still open: nothing buffers it.
    with (
        httpx.Client(base_url=balancer.dashboard, timeout=5) as client,
        client.stream("GET", "/live") as stream,
    ):
        lines = stream.iter_lines()
        assert next(line for line in lines if line) == "data: first"
        replicas["dashboard-1"].release.set()
        replicas["dashboard-2"].release.set()
        assert next(line for line in lines if line) == "data: second"

    # With no dashboard in rotation, haproxy reports itself unhealthy to docker-compose.
    replicas["dashboard-1"].stop()
    replicas["dashboard-2"].stop()
    balancer.wait_for(lambda: httpx.get(f"{balancer.stats}/healthz").status_code == 503, "unhealthy", 5)
    assert _compose_healthcheck(services, balancer.stats_port).returncode != 0

    # With no collector left, a tracker hears what a collector says when it cannot take events.
    replicas["collector-1"].stop()
    balancer.wait_for(lambda: balancer.states()["collector-1"].startswith("DOWN"), "collector-1 DOWN", 5)
    refused = httpx.post(f"{balancer.collector}/api/event", content=b"{}")
    assert refused.status_code == 503
    assert refused.headers["retry-after"] == "5"
    assert "retry later" in refused.json()["error"]


# ----------------------------------------------------------------- the small-server override


def _small_budget() -> int:
    match = re.search(r"^# Memory budget: (\d+) MiB", SMALL_FILE.read_text(), re.MULTILINE)
    assert match, "docker-compose.small.yml states its memory budget"
    return int(match.group(1)) * 1024**2


def _after(services: dict[str, Config], first: str) -> set[str]:
    """Services that start only once `first` has completed, directly or through another."""
    waiting = {
        name
        for name, s in services.items()
        if s.get("depends_on", {}).get(first, {}).get("condition") == "service_completed_successfully"
    }
    while True:
        more = {n for n, s in services.items() if set(s.get("depends_on", {})) & waiting} - waiting
        if not more:
            return waiting
        waiting |= more


def test_small_override_runs_one_replica_of_each_role(small: dict[str, Config]) -> None:
    for first, second in REPLICAS.values():
        assert _replicas(small[first]) == 1
        # docker-compose 1.29 reads deploy.replicas as the service's scale, and a dependency
        # with no container counts as healthy, so haproxy still starts.
        assert _replicas(small[second]) == 0
    assert set(small) == EXPECTED_SERVICES


def test_small_override_stays_within_its_memory_budget(small: dict[str, Config]) -> None:
    budget = _small_budget()
    assert budget <= (2048 - 256) * 1024**2, "a 2 GiB server keeps some memory for itself"
    running = {
        name: _memory_bytes(s["mem_limit"]) * _replicas(s)
        for name, s in small.items()
        if not s.get("profiles") and _replicas(s)
    }
    after_migrate = _after(small, "migrate")
    assert after_migrate >= set(ROLE_SERVICES) - {r[1] for r in REPLICAS.values()}
    # migrate exits before the roles (and haproxy, which waits for them) start
    long_running = sum(size for name, size in running.items() if name != "migrate")
    during_migrate = sum(size for name, size in running.items() if name not in after_migrate)
    assert long_running <= budget, f"{long_running / 1024**2:.0f} MiB of limits: {running}"
    assert during_migrate <= budget
    # Grafana, on demand, costs what the header says.
    extra = re.search(r"another (\d+) MiB", SMALL_FILE.read_text())
    assert extra
    assert small["grafana"]["profiles"] == ["grafana"]
    assert _memory_bytes(small["grafana"]["mem_limit"]) == int(extra.group(1)) * 1024**2
    for name, service in small.items():
        assert float(service["cpus"]) <= 1.0, f"{name} would not start on a single-core server"


def test_small_override_tunes_redpanda_redis_and_haproxy_below_their_limits(small: dict[str, Config]) -> None:
    command = small["redpanda"]["command"]
    for flag in ("--mode=dev-container", "--smp=1", "--reserve-memory=0M", "--overprovisioned"):
        assert flag in command
    heap = next(arg.removeprefix("--memory=") for arg in command if arg.startswith("--memory="))
    assert _memory_bytes(heap) < _memory_bytes(small["redpanda"]["mem_limit"])

    redis = small["redis"]["command"]
    assert redis[redis.index("--save") + 1] == ""
    assert _memory_bytes(redis[redis.index("--maxmemory") + 1]) < _memory_bytes(small["redis"]["mem_limit"])

    maxconn = int(small["haproxy"]["environment"]["PULSE_LB_MAXCONN"])
    # two 16 kB buffers per connection at worst, and room for haproxy itself
    assert maxconn * 32 * 1024 < _memory_bytes(small["haproxy"]["mem_limit"])
    assert _replicas(small["haproxy"]) == 1


def test_small_override_mounts_clickhouse_settings_that_clickhouse_knows(small: dict[str, Config]) -> None:
    mounts = _mounts(small["clickhouse"])
    assert mounts["/etc/clickhouse-server/config.d/pulse-low-memory.xml"] == str(CLICKHOUSE_SMALL_CONFIG)
    assert mounts["/etc/clickhouse-server/users.d/pulse-low-memory.xml"] == str(CLICKHOUSE_SMALL_USERS)

    # The repository's own files.
    config = ET.parse(CLICKHOUSE_SMALL_CONFIG).getroot()  # noqa: S314
    users = ET.parse(CLICKHOUSE_SMALL_USERS).getroot()  # noqa: S314
    merge_tree_section, profile_section = config.find("merge_tree"), users.find("profiles/default")
    assert merge_tree_section is not None
    assert profile_section is not None
    server = {e.tag: e.text or "" for e in config if e.tag != "merge_tree" and e.get("remove") is None}
    merge_tree = {e.tag: int(e.text or "") for e in merge_tree_section}
    profile = {e.tag: e.text or "" for e in profile_section}

    limit = _memory_bytes(small["clickhouse"]["mem_limit"])
    tracked = int(server["max_server_memory_usage"])
    assert 0 < tracked < limit
    assert int(server["mark_cache_size"]) < tracked
    assert int(server["uncompressed_cache_size"]) == 0
    assert 0 < int(profile["max_memory_usage"]) < tracked
    # MergeTree refuses tables whose thresholds exceed the merge pool's slots.
    slots = int(server["background_pool_size"]) * int(server["background_merges_mutations_concurrency_ratio"])
    assert max(merge_tree.values()) <= slots, (merge_tree, slots)

    # Every name is a ClickHouse setting (chDB is the same engine; a subprocess keeps its
    # global state out of this one).
    script = """
import json, sys, chdb
names = json.load(sys.stdin)
known = {}
for table, wanted in names.items():
    listed = ",".join("'" + n + "'" for n in wanted)
    rows = chdb.query(f"SELECT name FROM system.{table} WHERE name IN ({listed})", "JSONEachRow")
    known[table] = [json.loads(line)["name"] for line in str(rows).splitlines() if line]
print(json.dumps(known))
"""
    wanted = {
        "server_settings": sorted(server),
        "merge_tree_settings": sorted(merge_tree),
        "settings": sorted(profile),
    }
    result = subprocess.run(
        [sys.executable, "-c", script],
        input=msgspec.json.encode(wanted).decode(),
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    known = msgspec.json.decode(result.stdout)
    for table, names in wanted.items():
        assert sorted(known[table]) == names, f"not in system.{table}: {set(names) - set(known[table])}"


# ----------------------------------------------------------------- Prometheus


def _scrape_targets(job: Config) -> set[tuple[str, int]]:
    targets: set[tuple[str, int]] = set()
    for sd in job.get("dns_sd_configs", []):
        assert sd.get("type", "SRV") == "A", "A-record discovery needs an explicit port"
        targets.update((name, int(sd["port"])) for name in sd["names"])
    for static in job.get("static_configs", []):
        for target in static["targets"]:
            host, port = target.rsplit(":", 1)
            targets.add((host, int(port)))
    return targets


def test_prometheus_scrapes_every_replica_and_haproxy_every_5s(services: dict[str, Config]) -> None:
    prometheus = _load_yaml(PROMETHEUS_FILE)
    assert _mounts(services["prometheus"])["/etc/prometheus/prometheus.yml"] == str(PROMETHEUS_FILE)
    jobs = {job["job_name"]: job for job in prometheus["scrape_configs"]}
    interval = prometheus.get("global", {}).get("scrape_interval")
    for role, names in REPLICAS.items():
        job = jobs[role]
        assert job.get("metrics_path", "/metrics") == "/metrics"
        assert job.get("scrape_interval", interval) == "5s", role
        # By DNS, so that a replica scaled up with --scale is scraped too.
        assert "static_configs" not in job, role
        assert _scrape_targets(job) == {(name, _role_port(services[name], role)) for name in names}, role
    stats = _bind_port(services["haproxy"]["environment"]["PULSE_LB_STATS_BIND"])
    assert _scrape_targets(jobs["haproxy"]) == {("haproxy", stats)}
    assert jobs["haproxy"].get("metrics_path", "/metrics") == "/metrics"
    stats_frontend = _haproxy_sections()["frontend stats"]
    assert [
        "http-request",
        "use-service",
        "prometheus-exporter",
        "if",
        "{",
        "path",
        "/metrics",
        "}",
    ] in stats_frontend
    timeout = prometheus.get("global", {}).get("scrape_timeout", "10s")
    assert int(timeout.rstrip("s")) <= 5, "scrape_timeout may not exceed scrape_interval"
    # every scraped host is a compose service (or Prometheus itself)
    for job in jobs.values():
        for host, _port in _scrape_targets(job):
            assert host in services or host == "localhost", host


# ----------------------------------------------------------------- Grafana


def test_grafana_datasources_and_mounts(services: dict[str, Config]) -> None:
    grafana = services["grafana"]
    assert "grafana-clickhouse-datasource" in grafana["environment"]["GF_INSTALL_PLUGINS"].split(",")
    mounts = _mounts(grafana)
    assert mounts["/etc/grafana/provisioning"] == str(REPO / "grafana" / "provisioning")
    assert mounts["/var/lib/grafana/dashboards"] == str(REPO / "grafana" / "dashboards")
    assert (REPO / "grafana" / "dashboards").is_dir()

    datasources = {ds["uid"]: ds for ds in _load_yaml(DATASOURCES_FILE)["datasources"]}
    assert {"prometheus", "clickhouse"} <= set(datasources)

    prom = datasources["prometheus"]
    assert prom["type"] == "prometheus"
    url = urlsplit(prom["url"])
    assert url.hostname == "prometheus"
    assert url.hostname in services
    assert url.port in _published_targets(services["prometheus"])

    ch = datasources["clickhouse"]
    assert ch["type"] == "grafana-clickhouse-datasource"
    data = ch["jsonData"]
    assert data["host"] == "clickhouse"
    assert data["host"] in services
    assert (data["protocol"], int(data["port"])) == ("http", 8123)
    assert data["username"] == services["clickhouse"]["environment"]["CLICKHOUSE_USER"]
    assert data["defaultDatabase"] == services["collector-1"]["environment"]["PULSE_CLICKHOUSE_DATABASE"]
    # The password is expanded by Grafana from its own environment, which compose sets.
    password = re.fullmatch(r"\$\{?(\w+)\}?", ch["secureJsonData"]["password"])
    assert password, "the ClickHouse password must come from Grafana's environment"
    assert (
        grafana["environment"][password.group(1)]
        == services["clickhouse"]["environment"]["CLICKHOUSE_PASSWORD"]
    )


def test_grafana_dashboard_provider_reads_the_mounted_folder() -> None:
    providers = _load_yaml(DASHBOARDS_FILE)["providers"]
    assert len(providers) >= 1
    provider = providers[0]
    assert provider["type"] == "file"
    assert provider["options"]["path"] == "/var/lib/grafana/dashboards"


def test_connect_profile_runs_the_repositorys_pipelines_with_their_plugins(
    services: dict[str, Config],
) -> None:
    """Redpanda Connect services start only with `--profile connect`, on files that exist here."""
    for name in CONNECT_SERVICES:
        service = services[name]
        assert service["profiles"] == ["connect"], name
        assert service["build"]["dockerfile"] == "collectors/Dockerfile"
        command = service["command"]
        assert command[0] == "run"
        plugins = [arg.removeprefix("--rpc-plugins=") for arg in command if arg.startswith("--rpc-plugins=")]
        pipelines = [arg for arg in command[1:] if not arg.startswith("--")]
        for path in (*plugins, *pipelines):
            assert path.startswith("/app/"), path
            assert (REPO / path.removeprefix("/app/")).is_file(), f"{name}: {path} is not in the repository"
        assert "4195/ready" in " ".join(service["healthcheck"]["test"])
    assert services["connect-archive"]["environment"]["PULSE_ARCHIVE_DIR"] == "/archive"
    dockerfile = (REPO / "collectors" / "Dockerfile").read_text()
    assert "COPY --from=connect /redpanda-connect /usr/local/bin/redpanda-connect" in dockerfile
