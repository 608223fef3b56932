"""Pushes owed to platforms (``platform_pushes``): status updates and ledger bookings."""
from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg

STATUS, SALE = "status", "sale"
COLUMNS = (
    "id, tenant_id, integration_id, kind, order_id, external_id, status, payload::text AS payload, state, attempts,"
    " due_at, deadline_at, last_error, idempotency_key, ledger_id, ledger_number, correlation_id, created_at, finished_at"
)


@dataclass(frozen=True)
class Push:
    id: int
    tenant_id: str
    integration_id: int
    kind: str
    order_id: int
    external_id: str
    status: str | None
    payload: dict[str, Any]
    state: str
    attempts: int
    due_at: datetime
    deadline_at: datetime | None
    last_error: str | None
    idempotency_key: str | None
    ledger_id: str | None
    ledger_number: str | None
    correlation_id: str | None
    created_at: datetime
    finished_at: datetime | None


def _push(row: asyncpg.Record | None) -> Push | None:
    if row is None:
        return None
    values = dict(row)
    values["payload"] = json.loads(values["payload"])
    return Push(**values)


async def add_status(conn: asyncpg.Connection, tenant_id: str, integration_id: int, order_id: int, external_id: str,
                     status: str, payload: dict[str, Any], deadline_s: float, correlation_id: str | None) -> int:
    return await conn.fetchval(
        "INSERT INTO platform_pushes (tenant_id, integration_id, kind, order_id, external_id, status, payload,"
        " deadline_at, correlation_id) VALUES ($1, $2, 'status', $3, $4, $5, $6::jsonb,"
        " now() + make_interval(secs => $7), $8) RETURNING id",
        tenant_id, integration_id, order_id, external_id, status, json.dumps(payload), deadline_s, correlation_id,
    )


async def add_sale(conn: asyncpg.Connection, tenant_id: str, integration_id: int, order_id: int, external_id: str,
                   order: dict[str, Any], idempotency_key: str, correlation_id: str | None) -> int | None:
    """The order's booking in this ledger, unless it has one already (None): one per order and ledger."""
    return await conn.fetchval(
        "INSERT INTO platform_pushes (tenant_id, integration_id, kind, order_id, external_id, payload, idempotency_key,"
        " correlation_id) VALUES ($1, $2, 'sale', $3, $4, $5::jsonb, $6, $7)"
        " ON CONFLICT (integration_id, order_id) WHERE kind = 'sale' DO NOTHING RETURNING id",
        tenant_id, integration_id, order_id, external_id, json.dumps(order), idempotency_key, correlation_id,
    )


async def take_due(conn: asyncpg.Connection, limit: int, lease_s: float) -> list[Push]:
    """Due pushes, each the oldest pending one of its order and kind, leased for ``lease_s`` (a
    worker that dies mid-call leaves the row to be tried again then) and counted as an attempt."""
    rows = await conn.fetch(
        f"UPDATE platform_pushes SET due_at = now() + make_interval(secs => $2), attempts = attempts + 1"
        " WHERE id IN ("
        "  SELECT s.id FROM platform_pushes s WHERE s.state = 'pending' AND s.due_at <= now()"
        "  AND NOT EXISTS (SELECT 1 FROM platform_pushes p WHERE p.integration_id = s.integration_id"
        "   AND p.external_id = s.external_id AND p.kind = s.kind AND p.state = 'pending' AND p.id < s.id)"
        "  ORDER BY s.due_at LIMIT $1 FOR UPDATE SKIP LOCKED)"
        f" RETURNING {COLUMNS}",
        limit, lease_s,
    )
    return [_push(row) for row in rows]


async def done(conn: asyncpg.Connection, push_id: int, ledger_id: str | None = None,
               ledger_number: str | None = None) -> Push:
    return _push(await conn.fetchrow(
        "UPDATE platform_pushes SET state = 'done', finished_at = now(), last_error = NULL, ledger_id = $2,"
        f" ledger_number = $3 WHERE id = $1 RETURNING {COLUMNS}",
        push_id, ledger_id, ledger_number,
    ))


async def failed(conn: asyncpg.Connection, push_id: int, error: str) -> Push:
    return _push(await conn.fetchrow(
        f"UPDATE platform_pushes SET state = 'failed', finished_at = now(), last_error = $2 WHERE id = $1"
        f" RETURNING {COLUMNS}",
        push_id, error,
    ))


async def retry_at(conn: asyncpg.Connection, push_id: int, delay_s: float, error: str) -> None:
    await conn.execute(
        "UPDATE platform_pushes SET due_at = now() + make_interval(secs => $2), last_error = $3 WHERE id = $1",
        push_id, delay_s, error,
    )


async def requeue_failed_sales(conn: asyncpg.Connection, integration_id: int) -> int:
    """A manual sync of a ledger tries its failed bookings again (same idempotency key: never twice)."""
    result = await conn.execute(
        "UPDATE platform_pushes SET state = 'pending', attempts = 0, due_at = now(), finished_at = NULL"
        " WHERE integration_id = $1 AND kind = 'sale' AND state = 'failed'",
        integration_id,
    )
    return int(result.split()[-1])


async def pending_sales(conn: asyncpg.Connection, integration_id: int) -> int:
    return await conn.fetchval(
        "SELECT count(*) FROM platform_pushes WHERE integration_id = $1 AND kind = 'sale' AND state = 'pending'",
        integration_id)
