"""Sync runs and the integration's sync state (watermark, last sync, health). Reads for the API
are scoped to a tenant; the worker's reads and writes go by run id."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import asyncpg

RUN_COLUMNS = (
    "id, tenant_id, integration_id, status, fetched, created, updated, duplicates, failed, error, correlation_id,"
    " claimed_by, started_at, finished_at"
)
COUNTS = ("fetched", "created", "updated", "duplicates", "failed")


@dataclass(frozen=True)
class Run:
    id: int
    tenant_id: str
    integration_id: int
    status: str
    fetched: int
    created: int
    updated: int
    duplicates: int
    failed: int
    error: str | None
    correlation_id: str | None
    claimed_by: str | None
    started_at: datetime
    finished_at: datetime | None

    @property
    def counts(self) -> dict[str, int]:
        return {name: getattr(self, name) for name in COUNTS}


def _run(row: asyncpg.Record | None) -> Run | None:
    return Run(**dict(row)) if row is not None else None


def lock_key(run_id: int) -> str:
    """Text of the session advisory lock a worker holds while it runs ``run_id``."""
    return f"integrations.sync_run:{run_id}"


# --- API side (tenant-scoped) ---------------------------------------------------------------------

async def running(conn: asyncpg.Connection, integration_id: int) -> Run | None:
    return _run(await conn.fetchrow(
        f"SELECT {RUN_COLUMNS} FROM sync_runs WHERE integration_id = $1 AND status = 'running'", integration_id))


async def start(conn: asyncpg.Connection, tenant_id: str, integration_id: int, correlation_id: str | None) -> Run | None:
    """A new running run, or None if one is running already (the partial unique index decides)."""
    row = await conn.fetchrow(
        "INSERT INTO sync_runs (tenant_id, integration_id, correlation_id) VALUES ($1, $2, $3)"
        f" ON CONFLICT (integration_id) WHERE status = 'running' DO NOTHING RETURNING {RUN_COLUMNS}",
        tenant_id, integration_id, correlation_id,
    )
    if row is not None:
        await conn.execute(
            "UPDATE integrations SET last_sync_status = 'running', last_sync_error = NULL WHERE id = $1", integration_id)
    return _run(row)


async def get(conn: asyncpg.Connection, tenant_id: str, run_id: int) -> Run | None:
    """A run of a live integration of this tenant."""
    return _run(await conn.fetchrow(
        f"SELECT {', '.join('r.' + c for c in RUN_COLUMNS.split(', '))} FROM sync_runs r"
        " JOIN integrations i ON i.id = r.integration_id AND i.deleted_at IS NULL"
        " WHERE r.tenant_id = $1 AND r.id = $2",
        tenant_id, run_id,
    ))


async def page(conn: asyncpg.Connection, integration_id: int, limit: int, after_id: int | None) -> list[Run]:
    """Newest first; ``after_id``: the last id of the previous page."""
    rows = await conn.fetch(
        f"SELECT {RUN_COLUMNS} FROM sync_runs WHERE integration_id = $1 AND id < $2 ORDER BY id DESC LIMIT $3",
        integration_id, after_id if after_id is not None else 2**63 - 1, limit,
    )
    return [_run(row) for row in rows]


# --- Worker side ----------------------------------------------------------------------------------

async def unclaimed(conn: asyncpg.Connection, limit: int) -> list[int]:
    rows = await conn.fetch(
        "SELECT id FROM sync_runs WHERE status = 'running' AND claimed_by IS NULL ORDER BY id LIMIT $1", limit)
    return [row["id"] for row in rows]


async def claimed(conn: asyncpg.Connection) -> list[int]:
    rows = await conn.fetch("SELECT id FROM sync_runs WHERE status = 'running' AND claimed_by IS NOT NULL ORDER BY id")
    return [row["id"] for row in rows]


async def try_lock(conn: asyncpg.Connection, run_id: int) -> bool:
    """Session advisory lock on the run: held by whoever runs it, released by Postgres if it dies."""
    return await conn.fetchval("SELECT pg_try_advisory_lock(hashtextextended($1, 0))", lock_key(run_id))


async def unlock(conn: asyncpg.Connection, run_id: int) -> None:
    await conn.execute("SELECT pg_advisory_unlock(hashtextextended($1, 0))", lock_key(run_id))


async def claim(conn: asyncpg.Connection, run_id: int, worker: str) -> Run | None:
    """Take a run nobody has taken yet; None if another worker was first (or it is finished)."""
    return _run(await conn.fetchrow(
        f"UPDATE sync_runs SET claimed_by = $2 WHERE id = $1 AND status = 'running' AND claimed_by IS NULL"
        f" RETURNING {RUN_COLUMNS}",
        run_id, worker,
    ))


async def running_by_id(conn: asyncpg.Connection, run_id: int) -> Run | None:
    return _run(await conn.fetchrow(
        f"SELECT {RUN_COLUMNS} FROM sync_runs WHERE id = $1 AND status = 'running' FOR UPDATE", run_id))


async def add_counts(conn: asyncpg.Connection, run_id: int, **counts: int) -> None:
    sets = ", ".join(f"{name} = {name} + ${index}" for index, name in enumerate(counts, start=2))
    await conn.execute(f"UPDATE sync_runs SET {sets} WHERE id = $1", run_id, *counts.values())


async def finish(conn: asyncpg.Connection, run: Run, error: str | None, watermark: datetime | None = None,
                 keep_watermark: bool = True) -> Run:
    """Mark the run succeeded (``error`` None) or failed, and the integration's health with it; a
    success sets ``last_sync_at`` and, unless ``keep_watermark``, the new watermark."""
    status = "failed" if error is not None else "succeeded"
    row = await conn.fetchrow(
        f"UPDATE sync_runs SET status = $2, error = $3, finished_at = now() WHERE id = $1 RETURNING {RUN_COLUMNS}",
        run.id, status, error,
    )
    finished = _run(row)
    if error is None:
        await conn.execute(
            "UPDATE integrations SET last_sync_status = 'succeeded', last_sync_error = NULL, last_sync_at = $2,"
            " sync_watermark = CASE WHEN $3 THEN sync_watermark ELSE $4 END WHERE id = $1",
            run.integration_id, finished.finished_at, keep_watermark, watermark,
        )
    else:
        await conn.execute(
            "UPDATE integrations SET last_sync_status = 'failed', last_sync_error = $2 WHERE id = $1",
            run.integration_id, error,
        )
    return finished


async def watermark(conn: asyncpg.Connection, integration_id: int) -> datetime | None:
    return await conn.fetchval("SELECT sync_watermark FROM integrations WHERE id = $1", integration_id)
