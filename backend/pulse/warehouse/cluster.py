"""The cluster form of the ClickHouse migrations, rendered from the same single-server SQL files.

Each data table `T` becomes `T_local`, a Replicated* table on every shard, and a Distributed table
takes the name `T` with the same columns, so the application reads and inserts `T` unchanged.
Materialized views read and write the `_local` tables: the rows a Distributed insert hands to a
shard fire the views on that shard, and each shard rolls up its own events. Every DDL statement
runs ON CLUSTER.

Statements are rewritten token by token, so string literals, quoted names and comments are never
mistaken for SQL. A statement whose cluster form is not certain is refused with the reason rather
than guessed: a wrong cluster schema loses or double-counts rows without any error.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Final, Literal, NamedTuple, cast

import msgspec

# Rows inserted through `events` are routed to a shard by their Kafka partition:
# - the topic is keyed by site and visitor (events/message.py), so one visitor's events, and so
#   each of its sessions, land on one shard, and each shard's merges fold whole sessions;
# - a batch's rows of one partition reach one shard in one insert, together with the offset the
#   view records for that partition (consumed_offsets is routed alike, for rows inserted into it
#   directly). A batch that reached only some shards before its worker died therefore cannot make
#   a partition look consumed while its rows are missing, which a per-visitor hash would allow;
# - the routing is deterministic, so a retried batch splits the same way and each shard's part
#   carries the same insert-deduplication token as the first attempt.
# Give the topic at least as many partitions as the cluster has shards (a multiple spreads them
# evenly). Tables not listed are filled by views on each shard: their Distributed table only merges
# the shards on read, and with more than one shard it refuses inserts, which would bypass the views.
SHARDING_KEYS: Final = {
    "events": "kafka_partition",
    "consumed_offsets": "kafka_partition",
    # Written by the stats engine (pulse.stats.visit_days): a site's folded days on one shard, so
    # that reading them FINAL collapses a day folded twice.
    "visit_days": "cityHash64(site_id)",
    "visit_rows": "cityHash64(site_id)",
    "visit_rows_live": "cityHash64(site_id)",
    "visit_rows_live_marks": "cityHash64(site_id)",
}

# ALTER commands that change the column list, which a Distributed table must repeat.
_COLUMN_COMMANDS: Final = {"ADD COLUMN", "DROP COLUMN", "MODIFY COLUMN", "RENAME COLUMN", "COMMENT COLUMN"}

_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
# remote_servers names are XML element names: hyphens and dots are common, and need quoting in SQL.
_CLUSTER_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]*$")

_TOKEN = re.compile(
    r"""
    (?P<space>\s+|--[^\n]*|/\*.*?\*/)
  | (?P<string>'(?:[^'\\]|\\.|'')*')
  | (?P<quoted>`(?:[^`\\]|\\.|``)*`|"(?:[^"\\]|\\.|"")*")
  | (?P<word>[A-Za-z_][A-Za-z0-9_]*)
  | (?P<number>[0-9][A-Za-z0-9_.]*)
  | (?P<symbol>.)
    """,
    re.VERBOSE | re.DOTALL,
)

type TokenKind = Literal["space", "string", "quoted", "word", "number", "symbol"]


class ClusterError(ValueError):
    """The cluster configuration, or a migration statement, has no cluster DDL that can be vouched for."""


class Cluster(msgspec.Struct, frozen=True):
    """A cluster in the servers' remote_servers, and the database the migrations create on each server."""

    name: str
    database: str

    def __post_init__(self) -> None:
        if not _CLUSTER_NAME.match(self.name):
            raise ClusterError(f"invalid ClickHouse cluster name {self.name!r}")
        if not _IDENTIFIER.match(self.database):
            raise ClusterError(f"invalid ClickHouse database name {self.database!r}")

    @property
    def sql_name(self) -> str:
        return self.name if _IDENTIFIER.match(self.name) else f"`{self.name}`"

    @property
    def on_cluster(self) -> str:
        return f"ON CLUSTER {self.sql_name}"


class _Token(NamedTuple):
    kind: TokenKind
    text: str


class _Command(NamedTuple):
    kind: str
    text: str


class _Statement:
    """One statement's tokens, addressed by position among the tokens that are not space."""

    def __init__(self, text: str) -> None:
        self.tokens = [_Token(cast(TokenKind, m.lastgroup), m.group()) for m in _TOKEN.finditer(text)]
        self.code = [i for i, token in enumerate(self.tokens) if token.kind != "space"]
        self.depth: list[int] = []
        depth = 0
        for token in self.tokens:
            if token.text == ")" and token.kind == "symbol":
                depth -= 1
            self.depth.append(depth)
            if token.text == "(" and token.kind == "symbol":
                depth += 1

    def word(self, at: int) -> str:
        """The keyword at a position, upper-cased; '' for anything else or past the end."""
        if at >= len(self.code):
            return ""
        token = self.tokens[self.code[at]]
        return token.text.upper() if token.kind == "word" else ""

    def is_symbol(self, at: int, symbol: str) -> bool:
        return at < len(self.code) and self.tokens[self.code[at]] == _Token("symbol", symbol)

    def starts(self, at: int, *words: str) -> bool:
        return all(self.word(at + n) == word for n, word in enumerate(words))

    def skip(self, at: int, *words: str) -> int:
        return at + len(words) if self.starts(at, *words) else at

    def name(self, at: int) -> tuple[int, str]:
        """The unqualified table name at a position, as (position, name)."""
        if at >= len(self.code) or self.tokens[self.code[at]].kind != "word":
            raise ClusterError("expected a plain table name (quoted names are not rendered)")
        if self.is_symbol(at + 1, "."):
            raise ClusterError(
                "a database-qualified name is not rendered: migrations run in the configured database"
            )
        return at, self.tokens[self.code[at]].text

    def closing(self, at: int) -> int:
        """Position of the parenthesis closing the one opened at `at`."""
        depth = self.depth[self.code[at]]
        for end in range(at + 1, len(self.code)):
            if self.is_symbol(end, ")") and self.depth[self.code[end]] == depth:
                return end
        raise ClusterError("unbalanced parentheses")

    def text(self, start: int, end: int) -> str:
        """The original text from the token at position `start` to the one at `end`, inclusive."""
        return "".join(t.text for t in self.tokens[self.code[start] : self.code[end] + 1])

    def edited(self, edits: Sequence[tuple[int, int, str]]) -> str:
        """The statement with the tokens from position start to end (inclusive) replaced, per edit."""
        out: list[str] = []
        at = 0
        for start, end, text in sorted(edits):
            out.extend(t.text for t in self.tokens[at : self.code[start]])
            out.append(text)
            at = self.code[end] + 1
        out.extend(t.text for t in self.tokens[at:])
        return "".join(out)

    def commands(self, at: int) -> list[_Command]:
        """The comma-separated commands of an ALTER, from a position to the end."""
        commands = []
        start = at
        for end in range(at, len(self.code) + 1):
            if end == len(self.code) or (self.is_symbol(end, ",") and self.depth[self.code[end]] == 0):
                commands.append(
                    _Command(f"{self.word(start)} {self.word(start + 1)}", self.text(start, end - 1))
                )
                start = end + 1
        return commands


class ClusterRenderer:
    """Renders migration statements, in the order they are applied, into their cluster form.

    It remembers the tables and views the statements created, so a later ALTER knows which kind of
    object it changes: render every migration from the first, including those already applied.
    """

    def __init__(self, cluster: Cluster) -> None:
        self._cluster = cluster
        self._on = cluster.on_cluster
        # Data table -> the sharding key of its Distributed table (None: written by views only).
        self._tables: dict[str, str | None] = {}
        self._views: set[str] = set()

    def render(self, statement: str) -> list[str]:
        s = _Statement(statement)
        if any(s.starts(at, "ON", "CLUSTER") for at in range(len(s.code))):
            raise ClusterError("already ON CLUSTER: migrations are written for one server")
        if s.starts(0, "CREATE", "TABLE"):
            return self._create_table(s)
        if s.starts(0, "CREATE", "MATERIALIZED", "VIEW"):
            return self._create_view(s)
        if s.starts(0, "ALTER", "TABLE"):
            return self._alter(s)
        if s.starts(0, "INSERT", "INTO"):
            return self._insert(s, statement)
        if s.starts(0, "DROP", "TABLE") or s.starts(0, "DROP", "VIEW"):
            return self._drop(s)
        if s.starts(0, "TRUNCATE"):
            return self._truncate(s)
        if s.starts(0, "RENAME", "TABLE"):
            return self._rename(s)
        raise ClusterError(f"no cluster form for a {s.word(0)} {s.word(1)} statement")

    def _create_table(self, s: _Statement) -> list[str]:
        at = s.skip(2, "IF", "NOT", "EXISTS")
        if_not_exists = "IF NOT EXISTS " if at > 2 else ""
        at, name = s.name(at)
        if not s.is_symbol(at + 1, "("):
            raise ClusterError(f"CREATE TABLE {name} without a column list (AS a table or a SELECT)")
        columns_end = s.closing(at + 1)
        engine_at = next(
            (n for n in range(columns_end + 1, len(s.code)) if s.word(n) == "ENGINE"),
            None,
        )
        if engine_at is None:
            raise ClusterError(f"CREATE TABLE {name} names no ENGINE")
        engine_at += 2 if s.is_symbol(engine_at + 1, "=") else 1
        engine = s.tokens[s.code[engine_at]].text
        if engine.startswith("Replicated"):
            raise ClusterError(f"{name} is already {engine}: migrations are written for one server")
        if not engine.endswith("MergeTree"):
            raise ClusterError(
                f"{name} uses ENGINE {engine}: only the MergeTree family has a Replicated form here"
            )
        local = f"{name}_local"
        arguments = [f"'/clickhouse/tables/{{shard}}/{{database}}/{local}'", "'{replica}'"]
        engine_end = engine_at
        if s.is_symbol(engine_at + 1, "("):
            engine_end = s.closing(engine_at + 1)
            if engine_end > engine_at + 2:
                arguments.append(s.text(engine_at + 2, engine_end - 1))
        edits = [
            (at, at, f"{local} {self._on}"),
            (engine_at, engine_end, f"Replicated{engine}({', '.join(arguments)})"),
        ]
        # A replicated table keeps its insert-deduplication window in Keeper, under another name.
        edits += [
            (n, n, "replicated_deduplication_window")
            for n in range(engine_end + 1, len(s.code))
            if s.tokens[s.code[n]] == _Token("word", "non_replicated_deduplication_window")
        ]
        key = SHARDING_KEYS.get(name)
        self._tables[name] = key
        routing = [self._cluster.sql_name, self._cluster.database, local, *([key] if key else [])]
        distributed = (
            f"CREATE TABLE {if_not_exists}{name} {self._on} AS {local}\n"
            f"ENGINE = Distributed({', '.join(routing)})"
        )
        return [s.edited(edits), distributed]

    def _create_view(self, s: _Statement) -> list[str]:
        at, name = s.name(s.skip(3, "IF", "NOT", "EXISTS"))
        if s.word(at + 1) != "TO":
            raise ClusterError(
                f"materialized view {name} has no TO table: its inner table would not be replicated"
            )
        target_at, target = s.name(at + 2)
        if target not in self._tables:
            raise ClusterError(f"materialized view {name} writes to {target}, not a table of the migrations")
        self._views.add(name)
        edits = [(at, at, f"{name} {self._on}"), (target_at, target_at, f"{target}_local")]
        return [s.edited([*edits, self._local_source(s, target_at + 1, name)])]

    def _local_source(self, s: _Statement, start: int, view: str) -> tuple[int, int, str]:
        """The edit pointing a view's query at the shard's own rows of the one data table it reads.

        Reading the Distributed table instead would make every shard's view see the whole cluster.
        A query reading data tables twice (a join, a subquery) is refused: whether each read
        should see one shard or all of them is a decision for its author.
        """
        sources = []
        for n in range(start, len(s.code) - 1):
            if s.word(n) in ("FROM", "JOIN"):
                if s.is_symbol(n + 2, "."):
                    raise ClusterError(f"view {view} reads a database-qualified table")
                if s.tokens[s.code[n + 1]].text.strip('`"') in self._tables:
                    sources.append(n + 1)
        if len(sources) != 1:
            raise ClusterError(
                f"view {view} reads {len(sources)} tables of the migrations; "
                "only a view over exactly one is rendered"
            )
        at, table = s.name(sources[0])
        return (at, at, f"{table}_local")

    def _alter(self, s: _Statement) -> list[str]:
        at, name = s.name(s.skip(2, "IF", "EXISTS"))
        if name in self._views:
            edits = [(at, at, f"{name} {self._on}")]
            if any(c.kind == "MODIFY QUERY" for c in s.commands(at + 1)):
                edits.append(self._local_source(s, at + 1, name))
            return [s.edited(edits)]
        if name not in self._tables:
            raise ClusterError(f"ALTER of {name}, which no earlier migration created")
        commands = s.commands(at + 1)
        local = s.edited([(at, at, f"{name}_local {self._on}")])
        columns = [c for c in commands if c.kind in _COLUMN_COMMANDS]
        if not columns:
            return [local]
        if len(columns) == len(commands):
            distributed = s.edited([(at, at, f"{name} {self._on}")])
        else:
            distributed = f"ALTER TABLE {name} {self._on} {', '.join(c.text for c in columns)}"
        # A Distributed table may lack a column of its local tables for a moment, but one that names
        # a column they no longer have fails every read: it drops first and gains last.
        if any(c.kind == "DROP COLUMN" for c in columns):
            return [distributed, local]
        return [local, distributed]

    def _insert(self, s: _Statement, statement: str) -> list[str]:
        _, name = s.name(s.skip(2, "TABLE"))
        if name not in self._tables:
            raise ClusterError(f"INSERT into {name}, which no earlier migration created as a table")
        if self._tables[name] is None:
            raise ClusterError(
                f"INSERT into {name}: its rows are written by views on each shard, and its "
                "Distributed table has no sharding key to route others"
            )
        # Through the Distributed tables: the SELECT reads every shard and the rows are routed by key.
        return [statement]

    def _drop(self, s: _Statement) -> list[str]:
        at, name = s.name(s.skip(2, "IF", "EXISTS"))
        if name in self._views:
            self._views.discard(name)
            return [s.edited([(at, at, f"{name} {self._on}")])]
        if name not in self._tables:
            raise ClusterError(f"DROP of {name}, which no earlier migration created")
        del self._tables[name]
        # SYNC: a Replicated table frees its Keeper path only once dropped, and an Atomic database
        # otherwise drops it minutes later, so a migration re-creating it would find the path taken.
        sync = "" if s.word(len(s.code) - 1) == "SYNC" else " SYNC"
        return [
            s.edited([(at, at, f"{name} {self._on}")]),
            s.edited([(at, at, f"{name}_local {self._on}")]) + sync,
        ]

    def _truncate(self, s: _Statement) -> list[str]:
        at, name = s.name(s.skip(s.skip(1, "TABLE"), "IF", "EXISTS"))
        if name not in self._tables:
            raise ClusterError(f"TRUNCATE of {name}, which is not a table of the migrations")
        # Truncating a Distributed table only discards its queue of inserts not yet sent.
        return [s.edited([(at, at, f"{name}_local {self._on}")])]

    def _rename(self, s: _Statement) -> list[str]:
        at = 2
        renames = []
        while True:
            at, old = s.name(at)
            if s.word(at + 1) != "TO":
                raise ClusterError("expected RENAME TABLE a TO b")
            at, new = s.name(at + 2)
            renames.append((old, new))
            if not s.is_symbol(at + 1, ","):
                break
            at += 2
        if at != len(s.code) - 1:
            raise ClusterError("unexpected text after RENAME TABLE")
        for old, new in renames:
            if old in self._tables:
                raise ClusterError(
                    f"RENAME of table {old}: its Distributed table names {old}_local, and views read "
                    "that by name; create the new table, copy the rows and drop the old one instead"
                )
            if old not in self._views:
                raise ClusterError(f"RENAME of {old}, which no earlier migration created")
            self._views.discard(old)
            self._views.add(new)
        return [f"{s.text(0, at)} {self._on}"]
