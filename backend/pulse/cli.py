"""The `pulse` command: one CLI for every role and every operator task."""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from collections.abc import Sequence

from pulse.settings import Settings, load_settings


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="pulse", description="Pulse: real-time web analytics")
    sub = parser.add_subparsers(dest="command", required=True)

    up = sub.add_parser("up", help="run the whole product on this machine with embedded defaults")
    up.add_argument(
        "--demo-traffic", action="store_true", help="send realistic demo traffic through the collector"
    )
    up.add_argument("--rate", type=float, default=5.0, help="demo traffic, events per second (default 5)")

    run = sub.add_parser("run", help="run one or more roles in this process (the production shape)")
    run.add_argument("roles", nargs="+", choices=["collector", "rollup", "dashboard"])

    migrate = sub.add_parser("migrate", help="apply ClickHouse and OLTP migrations (idempotent)")
    migrate.add_argument(
        "--print",
        action="store_true",
        dest="print_ddl",
        help="print the ClickHouse DDL of every migration for this configuration (the cluster form "
        "when PULSE_CLICKHOUSE_CLUSTER is set) and exit without connecting",
    )

    site = sub.add_parser("site", help="change a site, addressed by its key")
    site_sub = site.add_subparsers(dest="site_command", required=True)
    hosts = site_sub.add_parser("hosts", help="accept events only from these hostnames (none: any host)")
    hosts.add_argument("key")
    hosts.add_argument("hosts", nargs="*", metavar="HOST", help="shop.example or *.shop.example")
    for action in ("disable", "enable"):
        site_sub.add_parser(action, help=f"{action} collecting for the site").add_argument("key")

    tenant = sub.add_parser("tenant", help="change a tenant, addressed by its id")
    tenant_sub = tenant.add_subparsers(dest="tenant_command", required=True)
    retention = tenant_sub.add_parser("retention", help="keep the tenant's raw events this many days")
    retention.add_argument("tenant_id")
    retention.add_argument("days", type=int)
    isolate = tenant_sub.add_parser(
        "isolate",
        help="move the tenant's events and rollups to a ClickHouse database of its own (idempotent)",
    )
    isolate.add_argument("tenant_id")
    isolate.add_argument("--database", help="its name (default: pulse_t_ and the id's first 12 characters)")

    from pulse.auth.cli import add_api_key_arguments, add_signing_key_arguments

    add_api_key_arguments(sub.add_parser("api-key", help="make, list and revoke a tenant's API keys"))
    add_signing_key_arguments(sub.add_parser("signing-key", help="the keys that sign bearer tokens"))

    replay = sub.add_parser(
        "replay", help="rebuild whole past days of raw events and every rollup of them, through Kafka"
    )
    from pulse.replay.cli import add_arguments

    add_arguments(replay)

    load = sub.add_parser("loadgen", help="send realistic traffic through a running collector")
    load.add_argument("--url", help="collector base URL (default: this installation's)")
    load.add_argument("--sites", required=True, help="comma-separated site keys, each optionally KEY=domain")
    load.add_argument("--rate", type=float, default=50.0, help="events per second (default 50)")
    load.add_argument("--duration", type=float, help="seconds to run (default: until Ctrl-C)")
    load.add_argument("--total", type=int, help="stop after this many events")
    load.add_argument("--seed", type=int, default=7)
    load.add_argument(
        "--resend",
        type=int,
        default=0,
        help="send an event refused with 429/5xx, or whose connection failed, again up to N times (default 0)",
    )
    load.add_argument(
        "--resend-delay", type=float, default=0.2, help="seconds before each resend (default 0.2)"
    )
    load.add_argument("--quiet", action="store_true", help="no progress bar")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    # One line per HTTP request is noise on a terminal and in role logs.
    logging.getLogger("httpx").setLevel(logging.WARNING)
    settings = load_settings()
    if args.command == "up":
        from pulse.embedded.supervisor import up

        return up(settings, demo_traffic=args.demo_traffic, rate=args.rate)
    if args.command == "run":
        from pulse.roles import serve

        serve(settings, args.roles)
        return 0
    if args.command == "migrate":
        return _migrate(settings, print_ddl=args.print_ddl)
    if args.command == "site":
        return _site(settings, args)
    if args.command == "tenant":
        return _tenant(settings, args)
    if args.command == "api-key":
        from pulse.auth.cli import api_key

        return api_key(settings, args)
    if args.command == "signing-key":
        from pulse.auth.cli import signing_key

        return signing_key(settings, args)
    if args.command == "replay":
        from pulse.replay.cli import replay

        return replay(settings, args)
    if args.command == "loadgen":
        from pulse.loadgen.cli import loadgen

        return loadgen(settings, args)
    return 2


def _migrate(settings: Settings, *, print_ddl: bool) -> int:
    from pulse.migrate import clickhouse_script, migrate
    from pulse.warehouse.cluster import ClusterError

    try:
        if print_ddl:
            print(clickhouse_script(settings), end="")
            return 0
        applied = asyncio.run(migrate(settings))
    except ClusterError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(f"applied {len(applied.clickhouse)} ClickHouse and {len(applied.oltp)} OLTP migrations")
    return 0


def _tenant(settings: Settings, args: argparse.Namespace) -> int:
    from pulse import admin

    if args.tenant_command == "isolate":
        return _isolate(settings, args)
    try:
        tenant = asyncio.run(admin.set_retention(settings, args.tenant_id, args.days))
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(f"{tenant.id} ({tenant.name}): raw events kept {tenant.retention_days} days")
    return 0


def _isolate(settings: Settings, args: argparse.Namespace) -> int:
    from pulse import admin

    try:
        moved = asyncio.run(admin.isolate(settings, args.tenant_id, args.database, print))
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    deleted = ", ".join(f"{table} {rows}" for table, rows in moved.deleted.items())
    print(
        f"tenant {moved.tenant_id} is on database {moved.database}: {moved.events} raw events there "
        f"({moved.copied} copied now), {len(moved.migrations)} migrations applied now; "
        f"rows deleted from {settings.clickhouse_database}: {deleted}"
    )
    if moved.left_behind:
        print(
            f"warning: {moved.left_behind} of its raw events were still arriving in "
            f"{settings.clickhouse_database}; run the command again to move them",
            file=sys.stderr,
        )
        return 1
    return 0


def _site(settings: Settings, args: argparse.Namespace) -> int:
    from pulse import admin

    try:
        if args.site_command == "hosts":
            site = asyncio.run(admin.set_hosts(settings, args.key, args.hosts))
        else:
            site = asyncio.run(admin.set_disabled(settings, args.key, args.site_command == "disable"))
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    hosts = ", ".join(site.allowed_hosts) or "any host"
    state = "disabled" if site.disabled else "collecting"
    print(f"{site.id} ({site.name}): {state}, accepts events from {hosts}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
