"""Operator commands against a running stack's database (the DSN from ``--database-url`` or
DATABASE_URL). Names are stored exactly as given.

    python -m gateway.cli create-tenant NAME                      # prints the new key as the last line
    python -m gateway.cli key create --tenant NAME --name CI [--scope read|write]
    python -m gateway.cli key list --tenant NAME
    python -m gateway.cli key rotate PREFIX [--grace-hours 24]     # new key last; the old one expires after the grace
    python -m gateway.cli key revoke PREFIX                        # gateways refuse it within AUTH_CACHE_SECONDS

A key is named by its prefix (its first 12 characters, ``pk_...``; 8 for keys made before issue 9),
as ``key list`` shows it."""
from __future__ import annotations

import argparse
import asyncio
import os
import sys
from typing import Awaitable, Callable, TypeVar

import asyncpg

from posint_common import db

from gateway import SCHEMA
from gateway.bootstrap import MIGRATIONS
from gateway.tenants import (
    DEFAULT_ROTATION_GRACE_HOURS, SCOPES, KeyNotFound, TenantExists, create_key, create_tenant, list_keys, revoke_key,
    rotate_key,
)

T = TypeVar("T")


async def _with_pool(database_url: str, work: Callable[[asyncpg.Pool], Awaitable[T]]) -> T:
    await db.migrate(database_url, SCHEMA, MIGRATIONS)
    pool = await db.create_pool(database_url, SCHEMA, max_size=1, application="gateway-cli")
    try:
        return await work(pool)
    finally:
        await pool.close()


async def create(database_url: str, name: str) -> str:
    _tenant_id, api_key = await _with_pool(database_url, lambda pool: create_tenant(pool, name))
    return api_key


def _valid_name(value: str, what: str) -> str:
    value = value.strip()
    if not value or len(value) > 100 or not value.isprintable():
        raise argparse.ArgumentTypeError(f"a {what} is 1 to 100 printable characters")
    return value


def _grace(value: str) -> float:
    try:
        hours = float(value)
    except ValueError:
        raise argparse.ArgumentTypeError("grace hours is a number") from None
    if not 0 <= hours <= 24 * 365:
        raise argparse.ArgumentTypeError("grace hours is from 0 to 8760")
    return hours


def _when(value) -> str:
    return value.isoformat(timespec="seconds") if value is not None else "-"


def _key_command(args: argparse.Namespace) -> int:
    url = args.database_url
    if args.action == "create":
        api_key = asyncio.run(_with_pool(url, lambda pool: create_key(pool, args.tenant, args.name, args.scope)))
        print(f"created key {api_key[:12]} ({args.name!r}, scope {args.scope}) for tenant {args.tenant!r}; the key (shown once):")
        print(api_key)
    elif args.action == "list":
        keys = asyncio.run(_with_pool(url, lambda pool: list_keys(pool, args.tenant)))
        print("\t".join(("prefix", "name", "scope", "created_at", "last_used_at", "expires_at", "revoked_at")))
        for key in keys:
            print("\t".join((key.prefix, key.name, key.scope, _when(key.created_at), _when(key.last_used_at),
                             _when(key.expires_at), _when(key.revoked_at))))
    elif args.action == "rotate":
        api_key, old_expires = asyncio.run(_with_pool(url, lambda pool: rotate_key(pool, args.prefix, args.grace_hours)))
        print(f"key {args.prefix} stays valid until {_when(old_expires)}; its successor {api_key[:12]} (shown once):")
        print(api_key)
    elif args.action == "revoke":
        asyncio.run(_with_pool(url, lambda pool: revoke_key(pool, args.prefix)))
        print(f"revoked key {args.prefix}; gateways refuse it within AUTH_CACHE_SECONDS")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="gateway.cli")
    parser.add_argument("--database-url", default=os.environ.get("DATABASE_URL"), help="default: DATABASE_URL")
    sub = parser.add_subparsers(dest="command", required=True)
    tenant = sub.add_parser("create-tenant", help="create a tenant and print its new API key as the last line")
    tenant.add_argument("name")
    tenant.add_argument("--database-url", default=argparse.SUPPRESS)
    key = sub.add_parser("key", help="create, list, rotate or revoke a tenant's API keys")
    actions = key.add_subparsers(dest="action", required=True)
    create_parser = actions.add_parser("create", help="a new key; printed as the last line")
    create_parser.add_argument("--tenant", required=True, type=lambda v: _valid_name(v, "tenant name"))
    create_parser.add_argument("--name", required=True, type=lambda v: _valid_name(v, "key name"))
    create_parser.add_argument("--scope", choices=SCOPES, default="write", help="read: GET/HEAD only; write: everything")
    list_parser = actions.add_parser("list", help="a tenant's keys (prefix, name, scope, dates); never the keys")
    list_parser.add_argument("--tenant", required=True, type=lambda v: _valid_name(v, "tenant name"))
    rotate_parser = actions.add_parser("rotate", help="a successor key (printed as the last line); the old one expires after the grace")
    rotate_parser.add_argument("prefix")
    rotate_parser.add_argument("--grace-hours", type=_grace, default=DEFAULT_ROTATION_GRACE_HOURS,
                               help=f"how long the old key keeps working (default {DEFAULT_ROTATION_GRACE_HOURS:g})")
    revoke_parser = actions.add_parser("revoke", help="stop a key at once (gateways: within AUTH_CACHE_SECONDS)")
    revoke_parser.add_argument("prefix")
    for each in (create_parser, list_parser, rotate_parser, revoke_parser):
        each.add_argument("--database-url", default=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if not args.database_url:
        parser.error("no database: pass --database-url or set DATABASE_URL")
    if args.command == "key":
        try:
            return _key_command(args)
        except KeyNotFound as error:
            print(str(error), file=sys.stderr)
            return 1
    name = args.name.strip()
    if not name or len(name) > 100 or not name.isprintable():
        print("a tenant name is 1 to 100 printable characters", file=sys.stderr)
        return 2
    try:
        api_key = asyncio.run(create(args.database_url, name))
    except TenantExists:
        print(f"a tenant named {name!r} already exists", file=sys.stderr)
        return 1
    print(f"created tenant {name!r}; its API key (shown once):")
    print(api_key)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
