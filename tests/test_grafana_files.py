"""Dashboards and alert rules are well-formed, and every ClickHouse panel runs on the real schema."""

from __future__ import annotations

import shutil
import subprocess

import httpx
import pytest
import yaml

from grafana_files import (
    GRAFANA,
    alert_measure,
    alert_rules,
    dashboards,
    expand_clickhouse_macros,
    last_hour,
    targets,
)
from pulse.warehouse.client import Warehouse
from stack import Stack
from visitor import BROWSER


def test_dashboards_have_unique_ids_and_known_datasources() -> None:
    provisioned = yaml.safe_load((GRAFANA / "provisioning" / "datasources" / "datasources.yml").read_text())
    known = {(d["type"], d["uid"]) for d in provisioned["datasources"]}
    found = dashboards()
    assert {"pulse-pipeline.json", "pulse-services.json", "pulse-tenants.json"} <= set(found)
    assert len({d["uid"] for d in found.values()}) == len(found)
    for name, dashboard in found.items():
        ids = [panel["id"] for panel in dashboard["panels"]]
        assert len(ids) == len(set(ids)), name
        for panel in dashboard["panels"]:
            assert panel["targets"], (name, panel["title"])
            for target in panel["targets"]:
                source = target["datasource"]
                assert (source["type"], source["uid"]) in known, (name, panel["title"])
                assert target.get("expr") or target.get("rawSql"), (name, panel["title"])


def test_dashboards_are_provisioned_from_the_mounted_folder() -> None:
    provider = yaml.safe_load((GRAFANA / "provisioning" / "dashboards" / "dashboards.yml").read_text())
    assert provider["providers"][0]["options"]["path"] == "/var/lib/grafana/dashboards"


def test_alert_rules_pass_promtool() -> None:
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.fail("promtool is missing: the test command installs Debian's prometheus package (make test)")
    for args in (["check", "rules", "alerts.yml"], ["check", "config", "prometheus.yml"]):
        result = subprocess.run([promtool, *args], cwd=GRAFANA / "prometheus", capture_output=True, text=True)
        assert result.returncode == 0, result.stdout + result.stderr
    rules = alert_rules()
    names = {rule["alert"] for rule in rules}
    assert {
        "PulseConsumerLagGrowing",
        "PulseFreshnessAbove60s",
        "PulseHighErrorRatio",
        "PulseCollectorRefusing",
        "PulseDeadLetters",
    } <= names
    for rule in rules:
        alert_measure(rule["expr"])


async def test_every_clickhouse_panel_returns_rows_for_seeded_data(stack: Stack) -> None:
    tenant = await stack.tenant("GrafanaSeed")
    async with httpx.AsyncClient(base_url=stack.collector, headers=BROWSER) as client:
        for i in range(30):
            name = "signup" if i % 5 == 0 else "pageview"
            body = f'{{"s": "{tenant.site.id}", "u": "https://g.example/{i}", "n": "{name}"}}'
            assert (await client.post("/api/event", content=body)).status_code == 202
    assert await stack.counts(tenant, {"events": 30}) == {"events": 30}

    warehouse = Warehouse(stack.settings.effective_clickhouse_url, stack.settings.clickhouse_database)
    start, end = last_hour()
    panels = list(targets("grafana-clickhouse-datasource"))
    assert panels
    for dashboard, title, target in panels:
        sql = expand_clickhouse_macros(target["rawSql"], start, end, interval_s=60)
        rows = (await warehouse.run(warehouse.client.query, sql)).result_rows
        assert rows, f"{dashboard} · {title} returned no rows"
