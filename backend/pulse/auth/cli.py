"""`pulse api-key ...` and `pulse signing-key rotate`: operators' commands for API credentials."""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime

from sqlalchemy.ext.asyncio import AsyncEngine

from pulse.auth.keyring import Keyring, SigningKey
from pulse.oltp.accounts import Accounts
from pulse.oltp.api_keys import OPERATOR, ApiKey, ApiKeys
from pulse.oltp.db import create_engine
from pulse.settings import Settings
from pulse.tenancy import KEY_PERMISSIONS


def add_api_key_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="api_key_command", required=True)
    create = sub.add_parser(
        "create", help="make a key; it is printed once, alone on stdout, and cannot be shown again"
    )
    create.add_argument("--tenant", required=True, help="tenant id")
    create.add_argument("--name", required=True, help="what the key is for, shown in listings")
    create.add_argument(
        "--permissions", required=True, help=f"comma-separated, some of {', '.join(KEY_PERMISSIONS)}"
    )
    listing = sub.add_parser("list", help="the tenant's keys, revoked ones included")
    listing.add_argument("--tenant", required=True, help="tenant id")
    revoke = sub.add_parser("revoke", help="revoke a key: its tokens stop working within seconds")
    revoke.add_argument("--tenant", required=True, help="tenant id")
    revoke.add_argument("key_id")


def add_signing_key_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="signing_key_command", required=True)
    sub.add_parser(
        "rotate", help="sign tokens with a new key now; tokens signed before stay valid until they expire"
    )


def api_key(settings: Settings, args: argparse.Namespace) -> int:
    try:
        return asyncio.run(_api_key(settings, args))
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1


def signing_key(settings: Settings, _: argparse.Namespace) -> int:
    current, ring = asyncio.run(_rotate(settings))
    print(f"signing new tokens with key {current.kid}")
    for key in ring:
        if key.retire_at is not None and key.verifies_at(current.created_at):
            print(f"key {key.kid} verifies the tokens it signed until {_time(key.retire_at)}")
    return 0


async def _api_key(settings: Settings, args: argparse.Namespace) -> int:
    async with _engine(settings) as engine:
        if await Accounts(engine).get_tenant(args.tenant) is None:
            raise ValueError(f"unknown tenant {args.tenant!r}")
        keys = ApiKeys(engine)
        if args.api_key_command == "create":
            permissions = [p.strip() for p in args.permissions.split(",") if p.strip()]
            key, secret = await keys.create(args.tenant, args.name, permissions, created_by=OPERATOR)
            print(f"created API key {key.id} ({key.name}): {', '.join(key.permissions)}", file=sys.stderr)
            print("it is shown this once: store it now", file=sys.stderr)
            print(secret)
        elif args.api_key_command == "list":
            for key in await keys.list(args.tenant):
                print(_describe(key))
        else:
            revoked = await keys.revoke(args.tenant, args.key_id)
            if revoked is None:
                raise ValueError(f"tenant {args.tenant} has no API key {args.key_id!r}")
            print(f"revoked {_describe(revoked)}")
    return 0


async def _rotate(settings: Settings) -> tuple[SigningKey, list[SigningKey]]:
    async with _engine(settings) as engine:
        return await Keyring(engine, settings).rotate()


def _describe(key: ApiKey) -> str:
    used = "never used" if key.last_used_at is None else f"last used {_time(key.last_used_at)}"
    state = "active" if key.revoked_at is None else f"revoked {_time(key.revoked_at)}"
    return f"{key.id}  {key.name}  [{','.join(key.permissions)}]  created {_time(key.created_at)}  {used}  {state}"


def _time(epoch_ms: int) -> str:
    return datetime.fromtimestamp(epoch_ms / 1000, UTC).strftime("%Y-%m-%d %H:%M:%SZ")


@asynccontextmanager
async def _engine(settings: Settings) -> AsyncIterator[AsyncEngine]:
    engine = create_engine(settings.effective_database_url)
    try:
        yield engine
    finally:
        await engine.dispose()
