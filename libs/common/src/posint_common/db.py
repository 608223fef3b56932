"""Postgres access: one pool per service, pinned to the service's own schema, and the migrator."""
from __future__ import annotations

import re
from pathlib import Path

import asyncpg

RUNTIME_MIGRATIONS = Path(__file__).parent / "migrations"
SCHEMA_NAME = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")
CONNECT_TIMEOUT_S = 10
COMMAND_TIMEOUT_S = 30


def checked_schema(schema: str) -> str:
    if not SCHEMA_NAME.match(schema):
        raise ValueError(f"invalid schema name {schema!r}")
    return schema


async def create_pool(dsn: str, schema: str, *, max_size: int = 10, application: str = "posint") -> asyncpg.Pool:
    return await asyncpg.create_pool(
        dsn,
        min_size=1,
        max_size=max_size,
        timeout=CONNECT_TIMEOUT_S,
        command_timeout=COMMAND_TIMEOUT_S,
        server_settings={"search_path": checked_schema(schema), "application_name": application},
        reset=_rollback_if_open,
    )


async def _rollback_if_open(conn: asyncpg.Connection) -> None:
    """Cheap release: our code never leaves session state behind (advisory locks are transaction-
    scoped, LISTEN has its own connection), so asyncpg's full RESET ALL round trip is not needed."""
    if conn.is_in_transaction():
        await conn.execute("ROLLBACK")


async def migrate(dsn: str, schema: str, service_migrations: Path) -> list[str]:
    """Apply the runtime's and then the service's versioned SQL files not yet applied.

    Runs in one transaction under an advisory lock, so concurrent starts of the same service are
    safe and a failing file leaves nothing half-applied. Returns the versions applied now.
    """
    checked_schema(schema)
    files = [("runtime/" + p.stem, p) for p in sorted(RUNTIME_MIGRATIONS.glob("*.sql"))]
    files += [(p.stem, p) for p in sorted(service_migrations.glob("*.sql"))]
    conn = await asyncpg.connect(dsn, timeout=CONNECT_TIMEOUT_S, command_timeout=COMMAND_TIMEOUT_S)
    try:
        async with conn.transaction():
            await conn.execute("SELECT pg_advisory_xact_lock(hashtext($1))", f"posint.migrate.{schema}")
            await conn.execute(f'CREATE SCHEMA IF NOT EXISTS "{schema}"')
            await conn.execute(f'SET LOCAL search_path TO "{schema}"')
            await conn.execute(
                "CREATE TABLE IF NOT EXISTS schema_migrations ("
                " version text PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())"
            )
            applied = {row["version"] for row in await conn.fetch("SELECT version FROM schema_migrations")}
            done = []
            for version, path in files:
                if version in applied:
                    continue
                await conn.execute(path.read_text())
                await conn.execute("INSERT INTO schema_migrations (version) VALUES ($1)", version)
                done.append(version)
            return done
    finally:
        await conn.close()
