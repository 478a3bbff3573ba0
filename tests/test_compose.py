"""docker-compose.yml, validated by the real docker-compose binary, and what it mounts.

`docker-compose config` resolves anchors, merge keys and variables exactly as a
deployment would; the resolved file is then checked against pulse.settings, the
Prometheus scrape configuration and the Grafana provisioning.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import msgspec
import pytest
import yaml

from pulse.settings import Settings, load_settings

REPO = Path(__file__).resolve().parents[1]
COMPOSE_FILE = REPO / "docker-compose.yml"
PROMETHEUS_FILE = REPO / "grafana" / "prometheus" / "prometheus.yml"
DATASOURCES_FILE = REPO / "grafana" / "provisioning" / "datasources" / "datasources.yml"
DASHBOARDS_FILE = REPO / "grafana" / "provisioning" / "dashboards" / "dashboards.yml"

SECRET = "test-secret-key-for-compose-config-only"

ROLES = ("collector", "rollup", "dashboard")
PULSE_SERVICES = ("migrate", *ROLES)
BACKING = ("redpanda", "clickhouse", "redis", "postgres")
CONNECT_SERVICES = ("connect-events", "connect-archive")
EXPECTED_SERVICES = {*BACKING, "prometheus", "grafana", *PULSE_SERVICES, *CONNECT_SERVICES}

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


def _docker_compose() -> str:
    exe = shutil.which("docker-compose")
    if exe is None:
        pytest.fail(
            "docker-compose is not on PATH: install Debian's docker-compose "
            "(apt-get install -y docker-compose) to validate docker-compose.yml"
        )
    return exe


def _run_compose(args: list[str], env: Mapping[str, str], env_file: Path) -> subprocess.CompletedProcess[str]:
    # --env-file and a minimal environment: neither a developer's .env nor their
    # exported variables may change what is validated.
    return subprocess.run(
        [_docker_compose(), "--env-file", str(env_file), "-f", str(COMPOSE_FILE), *args],
        cwd=REPO,
        env=dict(env),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


@pytest.fixture(scope="module")
def compose_env(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict[str, str], Path]:
    tmp = tmp_path_factory.mktemp("compose")
    env_file = tmp / "empty.env"
    env_file.write_text("")
    env = {"PATH": "/usr/local/bin:/usr/bin:/bin", "HOME": str(tmp), "PULSE_SECRET_KEY": SECRET}
    return env, env_file


@pytest.fixture(scope="module")
def compose(compose_env: tuple[dict[str, str], Path]) -> Config:
    env, env_file = compose_env
    quiet = _run_compose(["config", "-q"], env, env_file)
    assert quiet.returncode == 0, f"docker-compose config -q failed:\n{quiet.stderr}"
    full = _run_compose(["config"], env, env_file)
    assert full.returncode == 0, full.stderr
    config = yaml.safe_load(full.stdout)
    assert isinstance(config, dict)
    return config


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
    targets: set[int] = set()
    for port in service.get("ports", []):
        if isinstance(port, dict):
            targets.add(int(port["target"]))
        else:
            targets.add(int(str(port).split("/")[0].rsplit(":", 1)[-1]))
    return targets


# ----------------------------------------------------------------- the compose file


def test_secret_key_is_required(compose_env: tuple[dict[str, str], Path]) -> None:
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
    assert len(images) == 1, f"the four Pulse services should share one image tag, got {images}"
    assert services["migrate"]["command"] == ["migrate"]
    for role in ROLES:
        assert services[role]["command"] == ["run", role]


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
    for role in ROLES:
        service = services[role]
        port = _role_port(service, role)
        assert port == getattr(defaults, f"{role}_port"), f"{role} port differs from the Settings default"
        test = service["healthcheck"]["test"]
        assert test[0] in {"CMD", "CMD-SHELL"}, role
        command = " ".join(test[1:])
        # slim images have no curl: the healthcheck is the venv's python
        assert "python" in command
        assert "urllib" in command
        assert f"http://127.0.0.1:{port}/healthz" in command, role
    assert _published_targets(services["collector"]) == {_role_port(services["collector"], "collector")}
    assert _published_targets(services["dashboard"]) == {_role_port(services["dashboard"], "dashboard")}
    # Unpublished, so `--scale rollup=N` does not fight over a host port.
    assert not _published_targets(services["rollup"])


def test_roles_wait_for_migrate_and_their_backing_services(services: dict[str, Config]) -> None:
    for role, backing in ROLE_BACKING.items():
        depends = services[role]["depends_on"]
        assert depends["migrate"]["condition"] == "service_completed_successfully", role
        for name in backing:
            assert name in depends, f"{role} must depend on {name}"
            assert depends[name]["condition"] == "service_healthy", (role, name)
    migrate = services["migrate"]
    assert str(migrate["restart"]) in {"no", "False", "false"}
    assert "healthcheck" not in migrate
    for name in MIGRATE_BACKING:
        assert migrate["depends_on"][name]["condition"] == "service_healthy"
    # every service_healthy dependency must have a healthcheck to become healthy with
    for name, service in services.items():
        for dep, spec in service.get("depends_on", {}).items():
            if spec["condition"] == "service_healthy":
                assert "healthcheck" in services[dep], f"{name} waits for {dep}, which has no healthcheck"


def test_restart_policies_and_resource_limits(services: dict[str, Config]) -> None:
    for name, service in services.items():
        limit = service.get("mem_limit") or service.get("deploy", {}).get("resources", {}).get("limits")
        assert limit, f"{name} has no memory limit"
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


def test_service_urls_point_at_compose_services(services: dict[str, Config]) -> None:
    env = services["collector"]["environment"]
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


def test_prometheus_scrapes_every_role_every_5s(services: dict[str, Config]) -> None:
    prometheus = _load_yaml(PROMETHEUS_FILE)
    assert _mounts(services["prometheus"])["/etc/prometheus/prometheus.yml"] == str(PROMETHEUS_FILE)
    jobs = {job["job_name"]: job for job in prometheus["scrape_configs"]}
    interval = prometheus.get("global", {}).get("scrape_interval")
    for role in ROLES:
        job = jobs[role]
        assert job.get("metrics_path", "/metrics") == "/metrics"
        assert job.get("scrape_interval", interval) == "5s", role
        assert _scrape_targets(job) == {(role, _role_port(services[role], role))}, role
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
    assert data["defaultDatabase"] == services["collector"]["environment"]["PULSE_CLICKHOUSE_DATABASE"]
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
