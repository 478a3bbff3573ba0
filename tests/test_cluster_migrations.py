"""The cluster form of the ClickHouse migrations, rendered from the same files by configuration.

chDB has no Keeper, so Replicated tables and ON CLUSTER cannot run here. Every rendered statement is
parsed by ClickHouse's own parser (formatQuery and EXPLAIN AST, in chDB); and the same DDL less its
replication and ON CLUSTER runs on a one-shard cluster chDB can host, where events inserted through
the Distributed `events` reach the rollups read through their Distributed tables. chDB runs in a
child process (this file, run as a script): the test stack may hold this process's chDB.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import msgspec
import pytest

from pulse.cli import main
from pulse.settings import load_settings
from pulse.warehouse.client import Warehouse, create_database_ddl
from pulse.warehouse.cluster import Cluster, ClusterError, ClusterRenderer
from pulse.warehouse.migrate import (
    Migration,
    apply_clickhouse_migrations,
    ledger_ddl,
    migration_files,
    planned_migrations,
    statements,
)

MIGRATIONS = Path(__file__).resolve().parents[1] / "migrations" / "clickhouse"
CLUSTER = Cluster("pulse", "pulse")
DDL = re.compile(r"^(CREATE|ALTER|DROP|RENAME|TRUNCATE)\b")

# Statement forms the files do not use yet, each with its expected cluster form, rendered in this
# order after the migrations.
MORE_FORMS = [
    (
        "CREATE TABLE IF NOT EXISTS goals_daily (day Date, goal String, hits UInt64, version UInt32)\n"
        "ENGINE = ReplacingMergeTree(version) ORDER BY (day, goal)",
        [
            "CREATE TABLE IF NOT EXISTS goals_daily_local ON CLUSTER pulse (day Date, goal String, hits UInt64, "
            "version UInt32)\nENGINE = ReplicatedReplacingMergeTree("
            "'/clickhouse/tables/{shard}/{database}/goals_daily_local', '{replica}', version) ORDER BY (day, goal)",
            "CREATE TABLE IF NOT EXISTS goals_daily ON CLUSTER pulse AS goals_daily_local\n"
            "ENGINE = Distributed(pulse, pulse, goals_daily_local)",
        ],
    ),
    (
        "ALTER TABLE events DROP COLUMN IF EXISTS screen_width, MODIFY TTL toDateTime(ts) + INTERVAL 1 YEAR",
        [
            "ALTER TABLE events ON CLUSTER pulse DROP COLUMN IF EXISTS screen_width",
            "ALTER TABLE events_local ON CLUSTER pulse DROP COLUMN IF EXISTS screen_width, "
            "MODIFY TTL toDateTime(ts) + INTERVAL 1 YEAR",
        ],
    ),
    ("TRUNCATE TABLE sessions", ["TRUNCATE TABLE sessions_local ON CLUSTER pulse"]),
    (
        "RENAME TABLE sessions_mv TO sessions_view",
        ["RENAME TABLE sessions_mv TO sessions_view ON CLUSTER pulse"],
    ),
    (
        "CREATE MATERIALIZED VIEW goals_mv TO goals_daily AS\n"
        "SELECT toDate(ts) AS day, 'FROM events' AS goal, count() AS hits, 1 AS version FROM events GROUP BY day",
        [
            "CREATE MATERIALIZED VIEW goals_mv ON CLUSTER pulse TO goals_daily_local AS\n"
            "SELECT toDate(ts) AS day, 'FROM events' AS goal, count() AS hits, 1 AS version "
            "FROM events_local GROUP BY day"
        ],
    ),
    ("DROP VIEW IF EXISTS stats_day_mv", ["DROP VIEW IF EXISTS stats_day_mv ON CLUSTER pulse"]),
    (
        "DROP TABLE IF EXISTS stats_minute",
        [
            "DROP TABLE IF EXISTS stats_minute ON CLUSTER pulse",
            "DROP TABLE IF EXISTS stats_minute_local ON CLUSTER pulse SYNC",
        ],
    ),
]

# A one-shard cluster on this very server: chDB runs a Distributed table's local shard in-process.
CHDB_CONFIG = """<clickhouse>
  <tcp_port>9000</tcp_port>
  <remote_servers><pulse><shard><replica><host>localhost</host><port>9000</port></replica></shard></pulse>
  </remote_servers>
  <macros><shard>01</shard><replica>r1</replica></macros>
</clickhouse>
"""

EVENT_COLUMNS = (
    "tenant_id, site_id, event_id, name, pathname, visitor_id, kafka_partition, kafka_offset, kafka_epoch, "
    "session_id, ts, session_start"
)
# (name, path, visitor, Kafka partition, offset, session, time, session start) of one site's events:
# two visitors on two Kafka partitions. The engagement ping is not counted as an event.
EVENTS = [
    ("pageview", "/", 1, 0, 0, 11, "10:00:00", "10:00:00"),
    ("pageview", "/pricing", 1, 0, 1, 11, "10:01:00", "10:00:00"),
    ("engagement", "/pricing", 1, 0, 2, 11, "10:02:00", "10:00:00"),
    ("pageview", "/", 2, 1, 0, 22, "11:00:00", "11:00:00"),
    ("signup", "/", 2, 1, 1, 22, "11:00:05", "11:00:00"),
]
CHECKS = {
    "engines": "SELECT name, engine FROM system.tables WHERE database = 'pulse' AND name LIKE 'events%' ORDER BY name",
    "columns": "SELECT table, arraySort(groupArray((name, type, default_kind, default_expression, compression_codec))) "
    "FROM system.columns WHERE database = 'pulse' AND table IN ('events', 'events_local') GROUP BY table",
    "events": "SELECT count() FROM events",
    "stats_day": "SELECT sum(pageviews), sum(events), uniqMerge(visitors) FROM stats_day",
    "offsets": "SELECT kafka_partition, max(next_offset) FROM consumed_offsets "
    "WHERE kafka_epoch = 'e' GROUP BY kafka_partition ORDER BY kafka_partition",
    "sessions": "SELECT session_id, sum(pageviews), sum(events) FROM sessions GROUP BY session_id ORDER BY session_id",
    "pages": "SELECT value, sum(pageviews) FROM traffic_day WHERE dimension = 'page' GROUP BY value ORDER BY value",
}


class Parsed(msgspec.Struct, frozen=True):
    statement: str
    formatted: str = ""
    tables: list[str] = []
    error: str = ""


class ChdbReport(msgspec.Struct, frozen=True):
    parsed: list[Parsed]
    checks: dict[str, list[list[Any]]]


def cluster_statements(cluster: Cluster = CLUSTER) -> list[str]:
    return [s for m in planned_migrations(MIGRATIONS, cluster) for s in m.statements]


def more_forms() -> Iterator[tuple[str, list[str], list[str]]]:
    """Each extra statement with its expected and actual cluster form, after the migrations."""
    renderer = ClusterRenderer(CLUSTER)
    for migration in planned_migrations(MIGRATIONS):
        for statement in migration.statements:
            renderer.render(statement)
    for statement, expected in MORE_FORMS:
        yield statement, expected, renderer.render(statement)


def single_server(statement: str) -> str:
    """The cluster DDL as a server without Keeper runs it: no ON CLUSTER, no replication."""
    statement = statement.replace(" ON CLUSTER pulse", "")
    return re.sub(r"Replicated(\w*MergeTree)\('[^']*', '[^']*'(?:, )?", r"\1(", statement)


@pytest.fixture(scope="module")
def chdb_report() -> ChdbReport:
    parse = [
        create_database_ddl("pulse", "pulse"),
        ledger_ddl(CLUSTER),
        *cluster_statements(),
        *[s for _, _, rendered in more_forms() for s in rendered],
        *cluster_statements(Cluster("prod-eu.1", "pulse"))[:2],
    ]
    values = ", ".join(
        f"('t1', 's1', 'p{partition}o{offset}', '{name}', '{path}', {visitor}, {partition}, {offset}, 'e', "
        f"{session}, '2026-03-01 {time}', '2026-03-01 {start}')"
        for name, path, visitor, partition, offset, session, time, start in EVENTS
    )
    run = [
        "CREATE DATABASE pulse",
        "USE pulse",
        *[single_server(s) for s in [ledger_ddl(CLUSTER), *cluster_statements()]],
        # As the Warehouse sets it for a cluster.
        "SET distributed_foreground_insert = 1",
        f"INSERT INTO events ({EVENT_COLUMNS}) VALUES {values}",  # noqa: S608 (the rows above)
    ]
    request = {"parse": parse, "run": run, "checks": CHECKS}
    child = subprocess.run(
        [sys.executable, __file__],
        input=json.dumps(request),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert child.returncode == 0, child.stderr
    return msgspec.json.decode(child.stdout, type=ChdbReport)


def parsed_migrations(report: ChdbReport) -> list[Parsed]:
    """The parsed migration statements: those of every file, for the cluster named pulse."""
    return report.parsed[2 : 2 + len(cluster_statements())]


def test_cluster_setting_is_read_from_the_environment(tmp_path: Path) -> None:
    settings = load_settings({"PULSE_HOME": str(tmp_path), "PULSE_CLICKHOUSE_CLUSTER": "analytics"})
    assert settings.clickhouse_cluster == "analytics"
    assert load_settings({"PULSE_HOME": str(tmp_path)}).clickhouse_cluster == ""


def test_single_server_migrations_are_the_files() -> None:
    files = migration_files(MIGRATIONS)
    assert len(files) == 13
    assert planned_migrations(MIGRATIONS) == [Migration(p.name, statements(p.read_text())) for p in files]


class EmptyResult:
    """No migration applied yet."""

    result_rows: list[list[str]] = []


class RecordingClient:
    def __init__(self) -> None:
        self.commands: list[str] = []
        self.inserted: list[str] = []

    def command(self, statement: str) -> None:
        self.commands.append(statement)

    def query(self, statement: str) -> EmptyResult:
        assert statement == "SELECT name FROM schema_migrations FINAL"
        return EmptyResult()

    def insert(self, table: str, rows: list[list[str]], column_names: list[str]) -> None:
        assert (table, column_names) == ("schema_migrations", ["name"])
        self.inserted.extend(row[0] for row in rows)


def recorded(cluster: Cluster | None) -> RecordingClient:
    client = RecordingClient()
    apply_clickhouse_migrations(client, MIGRATIONS, cluster)
    return client


def test_single_server_applies_exactly_the_files_statements() -> None:
    client = recorded(None)
    files = migration_files(MIGRATIONS)
    ledger = """
CREATE TABLE IF NOT EXISTS schema_migrations (name String, applied_at DateTime('UTC') DEFAULT now())
ENGINE = ReplacingMergeTree ORDER BY name
"""
    assert client.commands == [ledger, *[s for p in files for s in statements(p.read_text())]]
    assert client.inserted == [p.name for p in files]


def test_cluster_applies_the_rendered_statements_and_a_replicated_ledger() -> None:
    client = recorded(CLUSTER)
    assert client.commands == [ledger_ddl(CLUSTER), *cluster_statements()]
    assert "ReplicatedReplacingMergeTree" in client.commands[0]
    assert client.inserted == [p.name for p in migration_files(MIGRATIONS)]


def test_every_cluster_statement_is_parsed_by_clickhouse(chdb_report: ChdbReport) -> None:
    failed = [(p.statement, p.error) for p in chdb_report.parsed if p.error]
    assert failed == []
    assert len(chdb_report.parsed) > 40


def test_no_merge_tree_without_replication_remains(chdb_report: ChdbReport) -> None:
    engines = [e for p in chdb_report.parsed for e in re.findall(r"\bENGINE = (\w+)", p.formatted)]
    assert {"ReplicatedMergeTree", "ReplicatedAggregatingMergeTree", "Distributed"} <= set(engines)
    plain = [e for e in engines if e != "Distributed" and not re.fullmatch(r"Replicated\w*MergeTree", e)]
    assert plain == []


def test_every_ddl_statement_runs_on_the_cluster(chdb_report: ChdbReport) -> None:
    for parsed in chdb_report.parsed:
        if DDL.match(parsed.formatted):
            assert re.match(r"^[^(\n]* ON CLUSTER (pulse\b|`prod-eu\.1`)", parsed.formatted), parsed.formatted
        else:
            assert parsed.formatted.startswith("INSERT INTO consumed_offsets"), parsed.formatted


def test_materialized_views_read_and_write_shard_local_tables(chdb_report: ChdbReport) -> None:
    views = set()
    for parsed in parsed_migrations(chdb_report):
        created = re.match(
            r"CREATE MATERIALIZED VIEW IF NOT EXISTS (\w+) ON CLUSTER pulse TO (\w+)", parsed.formatted
        )
        if created:
            views.add(created[1])
            assert created[2].endswith("_local")
        if created or "MODIFY QUERY" in parsed.formatted:
            assert parsed.tables == ["events_local"], parsed.formatted
    assert views == {
        "stats_minute_mv",
        "stats_hour_mv",
        "stats_day_mv",
        "consumed_offsets_mv",
        "sessions_mv",
        "breakdowns_hour_mv",
        "breakdowns_day_mv",
        "totals_hour_mv",
        "totals_day_mv",
        "traffic_hour_mv",
        "traffic_day_mv",
        "visits_hour_mv",
        "visits_day_mv",
        "day_versions_mv",
    }


def test_every_data_table_has_its_distributed_sibling(chdb_report: ChdbReport) -> None:
    replicated = set()
    distributed = {}
    for parsed in parsed_migrations(chdb_report):
        local = re.match(
            r"CREATE TABLE IF NOT EXISTS (\w+) ON CLUSTER pulse\n.*ENGINE = Replicated",
            parsed.formatted,
            re.S,
        )
        if local:
            replicated.add(local[1])
        sibling = re.fullmatch(
            r"CREATE TABLE IF NOT EXISTS (\w+) ON CLUSTER pulse AS (\w+)\nENGINE = Distributed\((.*)\)",
            parsed.formatted,
        )
        if sibling:
            assert sibling[2] == f"{sibling[1]}_local"
            distributed[sibling[1]] = sibling[3].split(", ")
    assert replicated == {f"{name}_local" for name in distributed}
    assert len(replicated) == 19
    for name, arguments in distributed.items():
        # Inserted tables are routed by Kafka partition, the read path's folds by site; the rollups
        # only merge on read.
        keys = {"events": ["kafka_partition"], "consumed_offsets": ["kafka_partition"]}
        for folds in ("visit_days", "visit_rows", "visit_rows_live", "visit_rows_live_marks"):
            keys[folds] = ["cityHash64(site_id)"]
        assert arguments == ["pulse", "pulse", f"{name}_local", *keys.get(name, [])]


def test_column_changes_reach_the_distributed_table_too(chdb_report: ChdbReport) -> None:
    alters = [
        p.formatted for p in parsed_migrations(chdb_report) if p.formatted.startswith("ALTER TABLE events")
    ]
    local = [a for a in alters if a.startswith("ALTER TABLE events_local ")]
    on_distributed = [a for a in alters if a.startswith("ALTER TABLE events ")]
    assert [a.replace("events_local", "events", 1) for a in local if "ADD COLUMN" in a] == on_distributed
    assert len(on_distributed) == 6
    assert [a for a in local if "ADD COLUMN" not in a] == [
        "ALTER TABLE events_local ON CLUSTER pulse\n    (MODIFY TTL toDateTime(ts) + toIntervalDay(retention_days))"
    ]


def test_inserts_through_distributed_tables_reach_the_shards_rollups(chdb_report: ChdbReport) -> None:
    checks = chdb_report.checks
    assert checks["engines"] == [["events", "Distributed"], ["events_local", "MergeTree"]]
    columns = {table: table_columns for table, table_columns in checks["columns"]}
    assert columns["events"] == columns["events_local"]
    assert len(columns["events"]) == 31
    assert checks["events"] == [[5]]
    assert checks["stats_day"] == [[3, 4, 2]]
    assert checks["offsets"] == [[0, 3], [1, 2]]
    assert checks["sessions"] == [[11, 2, 2], [22, 1, 2]]
    assert checks["pages"] == [["/", 2], ["/pricing", 1]]


def test_other_statement_forms() -> None:
    for statement, expected, rendered in more_forms():
        assert rendered == expected, statement


def test_a_cluster_name_that_is_no_identifier_is_quoted() -> None:
    local, distributed = cluster_statements(Cluster("prod-eu.1", "pulse"))[:2]
    assert "events_local ON CLUSTER `prod-eu.1`\n" in local
    assert distributed.endswith("ENGINE = Distributed(`prod-eu.1`, pulse, events_local, kafka_partition)")


@pytest.mark.parametrize(
    ("statement", "reason"),
    [
        ("ALTER TABLE goals ADD COLUMN x UInt8", "ALTER of goals, which no earlier migration created"),
        ("CREATE TABLE t (a UInt8) ENGINE = Memory", "only the MergeTree family"),
        ("CREATE TABLE t (a UInt8) ENGINE = ReplicatedMergeTree('/p', 'r') ORDER BY a", "already Replicated"),
        ("CREATE TABLE t AS events ENGINE = MergeTree ORDER BY ts", "without a column list"),
        ("CREATE TABLE t (a UInt8) ORDER BY a", "names no ENGINE"),
        ("CREATE TABLE pulse.t (a UInt8) ENGINE = MergeTree ORDER BY a", "database-qualified"),
        ("CREATE MATERIALIZED VIEW v AS SELECT * FROM events", "has no TO table"),
        ("CREATE MATERIALIZED VIEW v TO goals AS SELECT * FROM events", "writes to goals, not a table"),
        (
            "CREATE MATERIALIZED VIEW v TO stats_day AS SELECT * FROM events JOIN sessions USING session_id",
            "reads 2 tables",
        ),
        (
            "CREATE MATERIALIZED VIEW v TO stats_day AS SELECT * FROM events WHERE visitor_id IN "
            "(SELECT visitor_id FROM events)",
            "reads 2 tables",
        ),
        ("CREATE MATERIALIZED VIEW v TO stats_day AS SELECT * FROM pulse.events", "database-qualified"),
        ("ALTER TABLE stats_day_mv MODIFY QUERY SELECT * FROM `events`", "quoted names"),
        ("INSERT INTO stats_day SELECT * FROM stats_hour", "written by views on each shard"),
        ("RENAME TABLE events TO raw_events", "create the new table"),
        ("ALTER TABLE events ON CLUSTER c ADD COLUMN x UInt8", "already ON CLUSTER"),
        ("OPTIMIZE TABLE events FINAL", "no cluster form for a OPTIMIZE TABLE statement"),
        ("CREATE VIEW v AS SELECT 1", "no cluster form for a CREATE VIEW statement"),
    ],
)
def test_statements_without_a_certain_cluster_form_are_refused(statement: str, reason: str) -> None:
    renderer = ClusterRenderer(CLUSTER)
    for migration in planned_migrations(MIGRATIONS):
        for s in migration.statements:
            renderer.render(s)
    with pytest.raises(ClusterError, match=re.escape(reason)):
        renderer.render(statement)


def test_a_refusal_names_the_file_and_the_statement(tmp_path: Path) -> None:
    (tmp_path / "0001_buffer.sql").write_text("-- a buffer\nCREATE TABLE buffer (a UInt8) ENGINE = Memory;\n")
    with pytest.raises(ClusterError) as refused:
        planned_migrations(tmp_path, CLUSTER)
    assert str(refused.value) == (
        "0001_buffer.sql, for cluster pulse: buffer uses ENGINE Memory: only the MergeTree family has "
        "a Replicated form here, in:\nCREATE TABLE buffer (a UInt8) ENGINE = Memory"
    )
    assert planned_migrations(tmp_path) == [
        Migration("0001_buffer.sql", ["CREATE TABLE buffer (a UInt8) ENGINE = Memory"])
    ]


@pytest.mark.parametrize("name", ["", "a b", "x`y", "-c"])
def test_invalid_cluster_names_are_refused(name: str) -> None:
    with pytest.raises(ClusterError, match="invalid ClickHouse cluster name"):
        Cluster(name, "pulse")


def test_a_cluster_needs_a_clickhouse_server(tmp_path: Path) -> None:
    with pytest.raises(ClusterError, match="CLICKHOUSE_URL"):
        Warehouse(f"chdb://{tmp_path}", "pulse", "analytics")
    assert not any(tmp_path.iterdir())


def test_migrate_print_shows_the_ddl_for_the_configuration(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("PULSE_HOME", str(tmp_path))
    monkeypatch.delenv("PULSE_CLICKHOUSE_CLUSTER", raising=False)
    assert main(["migrate", "--print"]) == 0
    single = capsys.readouterr().out
    for path in migration_files(MIGRATIONS):
        assert f"-- {path.name}\n" in single
        for statement in statements(path.read_text()):
            assert f"{statement};" in single
    assert "ON CLUSTER" not in single

    monkeypatch.setenv("PULSE_CLICKHOUSE_CLUSTER", "analytics")
    assert main(["migrate", "--print"]) == 0
    cluster = capsys.readouterr().out
    assert cluster.startswith("-- ClickHouse schema for cluster analytics\n\n")
    assert "CREATE DATABASE IF NOT EXISTS pulse ON CLUSTER analytics;" in cluster
    for statement in cluster_statements(Cluster("analytics", "pulse")):
        assert f"{statement};" in cluster

    monkeypatch.setenv("PULSE_CLICKHOUSE_CLUSTER", "no such cluster")
    assert main(["migrate", "--print"]) == 1
    assert "invalid ClickHouse cluster name" in capsys.readouterr().err


def _child() -> None:
    """Parse, run and check in a fresh chDB: the request on stdin, a ChdbReport on stdout."""
    import chdb

    request = json.load(sys.stdin)
    with tempfile.TemporaryDirectory() as tmp:
        config = Path(tmp) / "config.xml"
        config.write_text(CHDB_CONFIG)
        connection = chdb.connect(f":memory:?config-file={config}")
        parsed = []
        for statement in request["parse"]:
            literal = "'" + statement.replace("\\", "\\\\").replace("'", "\\'") + "'"
            try:
                text = connection.query(f"SELECT formatQuery({literal})", "TSVRaw").data()
                ast = connection.query(f"EXPLAIN AST {statement}", "TSVRaw").data()
            except Exception as exc:  # reported to the test, statement by statement
                parsed.append(Parsed(statement, error=str(exc)))
                continue
            tables = re.findall(r"TableIdentifier (\S+)", ast)
            parsed.append(Parsed(statement, formatted=text.rstrip("\n"), tables=tables))
        for statement in request["run"]:
            connection.query(statement)
        checks = {
            name: json.loads(connection.query(query, "JSONCompact").data())["data"]
            for name, query in request["checks"].items()
        }
    sys.stdout.write(msgspec.json.encode(ChdbReport(parsed, checks)).decode())


if __name__ == "__main__":
    _child()
