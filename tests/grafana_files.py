"""Reads the Grafana dashboards and Prometheus rules the way Grafana and Prometheus do."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import yaml

GRAFANA = Path(__file__).resolve().parents[1] / "grafana"
COMPARISON = re.compile(r"\s(>|<|>=|<=|==|!=)\s+[0-9.]+\s*$")


def dashboards() -> dict[str, dict[str, Any]]:
    return {p.name: json.loads(p.read_text()) for p in sorted((GRAFANA / "dashboards").glob("*.json"))}


def targets(datasource_type: str) -> Iterator[tuple[str, str, dict[str, Any]]]:
    for name, dashboard in dashboards().items():
        for panel in dashboard["panels"]:
            for target in panel["targets"]:
                if target["datasource"]["type"] == datasource_type:
                    yield name, panel["title"], target


def alert_rules() -> list[dict[str, Any]]:
    groups = yaml.safe_load((GRAFANA / "prometheus" / "alerts.yml").read_text())["groups"]
    return [rule for group in groups for rule in group["rules"]]


def alert_measure(expr: str) -> str:
    """`<measure> > 60` → `<measure>`: the part that must return data on a healthy stack."""
    match = COMPARISON.search(expr)
    assert match, f"alert expression is not `<measure> <op> <threshold>`: {expr}"
    return expr[: match.start()].strip()


def expand_clickhouse_macros(sql: str, start: datetime, end: datetime, interval_s: int) -> str:
    """The grafana-clickhouse-datasource macros our panels use, expanded as the plugin does."""
    frm, to = int(start.timestamp()), int(end.timestamp())
    sql = re.sub(r"\$__timeFilter\((\w+)\)", rf"\1 >= toDateTime({frm}) AND \1 <= toDateTime({to})", sql)
    sql = re.sub(
        r"\$__timeInterval\((\w+)\)", rf"toStartOfInterval(toDateTime(\1), INTERVAL {interval_s} second)", sql
    )
    assert "$__" not in sql, f"unexpanded macro in {sql}"
    return sql


def last_hour() -> tuple[datetime, datetime]:
    now = datetime.now(UTC)
    return now - timedelta(hours=1), now + timedelta(minutes=5)
