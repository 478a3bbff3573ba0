"""Configuration comes from the environment into one typed object, or fails naming the variable."""

from __future__ import annotations

from pathlib import Path

import pytest

from pulse.settings import load_settings


def test_service_urls_switch_from_embedded_to_configured(tmp_path: Path) -> None:
    embedded = load_settings({"PULSE_HOME": str(tmp_path)})
    assert embedded.effective_clickhouse_url == f"chdb://{(tmp_path / 'clickhouse').resolve()}"
    assert embedded.effective_database_url.startswith("sqlite+aiosqlite:///")
    configured = load_settings(
        {
            "PULSE_HOME": str(tmp_path),
            "KAFKA_BOOTSTRAP_SERVERS": "redpanda:9092",
            "CLICKHOUSE_URL": "http://default:pw@clickhouse:8123",
            "REDIS_URL": "redis://redis:6379/0",
            "DATABASE_URL": "postgresql://pulse:pulse@postgres/pulse",
        }
    )
    assert configured.kafka_bootstrap_servers == "redpanda:9092"
    assert configured.effective_clickhouse_url == "http://default:pw@clickhouse:8123"
    assert configured.effective_database_url == "postgresql://pulse:pulse@postgres/pulse"


def test_typed_values_are_converted(tmp_path: Path) -> None:
    settings = load_settings(
        {
            "PULSE_HOME": str(tmp_path),
            "PULSE_COLLECTOR_PORT": "9000",
            "PULSE_COOKIE_SECURE": "true",
            "PULSE_TRUSTED_PROXIES": "10.0.0.1, 10.0.0.2",
        }
    )
    assert settings.home == tmp_path
    assert settings.collector_port == 9000
    assert settings.cookie_secure is True
    assert settings.trusted_proxies == ("10.0.0.1", "10.0.0.2")


def test_invalid_value_fails_naming_the_field(tmp_path: Path) -> None:
    with pytest.raises(SystemExit, match="collector_port"):
        load_settings({"PULSE_HOME": str(tmp_path), "PULSE_COLLECTOR_PORT": "eighty"})


def test_trusted_proxies_take_networks_and_refuse_names(tmp_path: Path) -> None:
    settings = load_settings(
        {"PULSE_HOME": str(tmp_path), "PULSE_TRUSTED_PROXIES": "172.30.0.2, 10.0.0.0/8,::1"}
    )
    assert settings.trusted_proxies == ("172.30.0.2", "10.0.0.0/8", "::1")
    # A host name never equals a peer address: trusting it would silently trust nobody.
    with pytest.raises(SystemExit, match="PULSE_TRUSTED_PROXIES"):
        load_settings({"PULSE_HOME": str(tmp_path), "PULSE_TRUSTED_PROXIES": "127.0.0.1,haproxy"})


def test_secret_is_generated_once_per_home_and_kept(tmp_path: Path) -> None:
    first = load_settings({"PULSE_HOME": str(tmp_path)}).secret_key
    assert len(first) >= 32
    assert load_settings({"PULSE_HOME": str(tmp_path)}).secret_key == first
    assert (tmp_path / "secret.key").stat().st_mode & 0o777 == 0o600
    assert load_settings({"PULSE_HOME": str(tmp_path), "PULSE_SECRET_KEY": "given"}).secret_key == "given"
