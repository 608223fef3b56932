"""Operator commands against a running stack's database: ``python -m gateway.cli create-tenant NAME``
(the DSN from ``--database-url`` or DATABASE_URL). A name is stored exactly as given."""
from __future__ import annotations

import argparse
import asyncio
import os
import sys

from posint_common import db

from gateway import SCHEMA
from gateway.bootstrap import MIGRATIONS
from gateway.tenants import TenantExists, create_tenant


async def create(database_url: str, name: str) -> str:
    await db.migrate(database_url, SCHEMA, MIGRATIONS)
    pool = await db.create_pool(database_url, SCHEMA, max_size=1, application="gateway-cli")
    try:
        _tenant_id, api_key = await create_tenant(pool, name)
        return api_key
    finally:
        await pool.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="gateway.cli")
    sub = parser.add_subparsers(dest="command", required=True)
    tenant = sub.add_parser("create-tenant", help="create a tenant and print its new API key as the last line")
    tenant.add_argument("name")
    tenant.add_argument("--database-url", default=os.environ.get("DATABASE_URL"), help="default: DATABASE_URL")
    args = parser.parse_args(argv)
    if not args.database_url:
        parser.error("no database: pass --database-url or set DATABASE_URL")
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
