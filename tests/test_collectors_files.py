"""collectors/: plugin manifests as Redpanda Connect validates them, and pipelines that use them as declared.

No Redpanda Connect binary can be installed on this machine (it is on none of the registries it
reaches), so the pipelines are checked here and the plugins are driven over gRPC by
tests/test_connect_plugin.py; the manifests' rules follow Redpanda Connect's rpcplugin config.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import msgspec
import pytest
import yaml

from connect_plugin import PLUGINS
from pulse.connect.processors import IngestConfig, ingest_config

PIPELINES = PLUGINS.parent / "pipelines"
FIELD_TYPES = {"string", "int", "float", "bool", "unknown"}
FIELD_KINDS = {"scalar", "map", "list"}


def _manifests() -> dict[str, dict[str, Any]]:
    return {path.stem: yaml.safe_load(path.read_text()) for path in sorted(PLUGINS.glob("*.yaml"))}


def _uses(node: Any, names: set[str]) -> Iterator[tuple[str, Any]]:
    """Every (plugin name, its config) anywhere in a pipeline."""
    if isinstance(node, dict):
        for key, value in node.items():
            if key in names:
                yield key, value
            yield from _uses(value, names)
    elif isinstance(node, list):
        for item in node:
            yield from _uses(item, names)


def test_manifests_are_valid_processor_plugins_run_by_pulse_connect() -> None:
    manifests = _manifests()
    assert set(manifests) == {"pulse_ingest", "pulse_export"}
    for stem, manifest in manifests.items():
        assert manifest["name"] == stem
        assert manifest["type"] == "processor"
        assert manifest["command"] == ["python", "-m", "pulse.connect", stem.removeprefix("pulse_")]
        assert manifest["summary"]
        for field in manifest["fields"]:
            assert field["name"]
            assert field.get("type", "unknown") in FIELD_TYPES, field
            assert field.get("kind", "scalar") in FIELD_KINDS, field


def test_ingest_manifest_declares_exactly_the_config_the_plugin_reads_with_its_defaults() -> None:
    fields = _manifests()["pulse_ingest"]["fields"]
    assert [field["name"] for field in fields] == list(IngestConfig.__struct_fields__)
    defaults = {field["name"]: field["default"] for field in fields}
    assert msgspec.convert(defaults, IngestConfig) == IngestConfig()


@pytest.mark.parametrize("pipeline", sorted(PIPELINES.glob("*.yaml")), ids=lambda path: path.stem)
def test_pipelines_use_declared_plugins_with_declared_fields(pipeline: Path) -> None:
    manifests = _manifests()
    config = yaml.safe_load(pipeline.read_text())
    assert {"input", "output"} <= set(config), pipeline.name
    uses = list(_uses(config, set(manifests)))
    assert uses, f"{pipeline.name} uses no Pulse plugin"
    for name, plugin_config in uses:
        declared = {field["name"] for field in manifests[name]["fields"]}
        assert set(plugin_config or {}) <= declared, (pipeline.name, name)
        if name == "pulse_ingest":
            # Values from the environment (${...}) are checked when the plugin starts.
            literal = {k: v for k, v in plugin_config.items() if not str(v).startswith("${")}
            if literal.get("format") == "access_log":
                literal |= {"site": "k", "origin": "https://x.example"}
            ingest_config(literal)


def test_ingest_pipelines_key_records_like_the_collector_and_send_refusals_to_the_dead_letter_topic() -> None:
    for name in ("server_events", "access_log"):
        text = (PIPELINES / f"{name}.yaml").read_text()
        assert "key: '${! meta(\"pulse_key\") }'" in text, name
        assert "partitioner: murmur2_hash" in text, name
        assert "topic: events.dlq" in text, name


def test_archive_pipeline_writes_the_layout_replay_reads() -> None:
    text = (PIPELINES / "archive.yaml").read_text()
    assert '/events/date=${! meta("pulse_date") }/' in text
    assert ".jsonl.gz'" in text
    assert "algorithm: gzip" in text
