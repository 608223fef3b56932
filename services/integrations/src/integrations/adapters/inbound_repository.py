"""Inbound orders and rejected pushes. Pushes are not tenant-scoped requests (no API key): the
integration is found by id alone, and its tenant comes from its row."""
from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime

import asyncpg

from integrations.adapters.repository import DETAIL_COLUMNS, _integration
from integrations.domain.model import Integration

KEEP_REJECTIONS = 100  # per integration
KEEP_REJECTED_BYTES = 65_536  # per rejected body


@dataclass(frozen=True)
class Received:
    external_id: str
    received_at: datetime


async def live_integration(conn: asyncpg.Connection, integration_id: int) -> Integration | None:
    """The integration a push is addressed to, whatever its tenant; a deleted one is unknown."""
    row = await conn.fetchrow(
        f"SELECT {DETAIL_COLUMNS} FROM integrations WHERE id = $1 AND deleted_at IS NULL", integration_id)
    return _integration(row)


async def delivered(conn: asyncpg.Connection, integration_id: int, webhook_id: str | None) -> Received | None:
    """The order a delivery id was already seen for: a redelivered message."""
    if webhook_id is None:
        return None
    row = await conn.fetchrow(
        "SELECT o.external_id, o.received_at FROM inbound_deliveries d JOIN inbound_orders o"
        " ON o.integration_id = d.integration_id AND o.external_id = d.external_id"
        " WHERE d.integration_id = $1 AND d.webhook_id = $2",
        integration_id, webhook_id,
    )
    return Received(row["external_id"], row["received_at"]) if row else None


@dataclass(frozen=True)
class Stored(Received):
    normalized: dict
    cancelled_at: datetime | None = None  # when the platform's cancellation was handed over


async def stored_order(conn: asyncpg.Connection, integration_id: int, external_id: str) -> Stored | None:
    """The order as last received, locked until the transaction ends (copies of one order queue up)."""
    row = await conn.fetchrow(
        "SELECT external_id, received_at, normalized, cancelled_at FROM inbound_orders"
        " WHERE integration_id = $1 AND external_id = $2 FOR UPDATE",
        integration_id, external_id,
    )
    return Stored(row["external_id"], row["received_at"], json.loads(row["normalized"]), row["cancelled_at"]) \
        if row else None


# The delivery id's order (a redelivered message) and the order as last received (locked until the
# transaction ends), in one round trip.
SEEN_AND_STORED = """
WITH seen AS (
  SELECT o.external_id, o.received_at FROM inbound_deliveries d JOIN inbound_orders o
      ON o.integration_id = d.integration_id AND o.external_id = d.external_id
  WHERE d.integration_id = $1 AND d.webhook_id = $2),
stored AS (
  SELECT external_id, received_at, normalized, cancelled_at FROM inbound_orders
  WHERE integration_id = $1 AND external_id = $3 FOR UPDATE)
SELECT true AS seen, external_id, received_at, NULL::jsonb AS normalized, NULL::timestamptz AS cancelled_at FROM seen
UNION ALL
SELECT false, external_id, received_at, normalized, cancelled_at FROM stored
"""


async def seen_and_stored(conn: asyncpg.Connection, integration_id: int, webhook_id: str | None,
                          external_id: str) -> tuple[Received | None, Stored | None]:
    """``delivered`` and ``stored_order`` in one statement."""
    seen = stored = None
    for row in await conn.fetch(SEEN_AND_STORED, integration_id, webhook_id, external_id):
        if row["seen"]:
            seen = Received(row["external_id"], row["received_at"])
        else:
            stored = Stored(row["external_id"], row["received_at"], json.loads(row["normalized"]), row["cancelled_at"])
    return seen, stored


# A new order, its delivery id and the integration's last inbound time in one statement; nothing
# written when a concurrent delivery of the same order won.
ADD_NEW_ORDER = """
WITH added AS (
  INSERT INTO inbound_orders (tenant_id, integration_id, external_id, webhook_id, body, normalized)
  VALUES ($1, $2, $3, $4, $5, $6::jsonb) ON CONFLICT DO NOTHING RETURNING external_id, received_at),
touched AS (
  UPDATE integrations SET last_inbound_order_at = added.received_at FROM added WHERE integrations.id = $2),
delivery AS (
  INSERT INTO inbound_deliveries (integration_id, webhook_id, external_id)
  SELECT $2, $4, external_id FROM added WHERE $4::text IS NOT NULL ON CONFLICT DO NOTHING)
SELECT external_id, received_at FROM added
"""


async def add_new_order(conn: asyncpg.Connection, integration: Integration, external_id: str, webhook_id: str | None,
                        body: bytes, normalized: dict) -> Received | None:
    """Record a new order (with its delivery id, and the integration's last inbound time); None if a
    concurrent delivery of the same order won (nothing written)."""
    row = await conn.fetchrow(ADD_NEW_ORDER, integration.tenant_id, integration.id, external_id, webhook_id, body,
                              json.dumps(normalized))
    return Received(row["external_id"], row["received_at"]) if row else None


async def mark_cancelled(conn: asyncpg.Connection, integration_id: int, external_id: str, reason: str | None) -> None:
    """The platform cancelled the order: remembered, so a repeated cancellation is a duplicate."""
    await conn.execute(
        "UPDATE inbound_orders SET cancelled_at = now(), cancel_reason = $3 WHERE integration_id = $1 AND external_id = $2",
        integration_id, external_id, reason,
    )


async def add_delivery(conn: asyncpg.Connection, integration_id: int, webhook_id: str | None, external_id: str) -> None:
    if webhook_id is not None:
        await conn.execute(
            "INSERT INTO inbound_deliveries (integration_id, webhook_id, external_id) VALUES ($1, $2, $3)"
            " ON CONFLICT DO NOTHING",
            integration_id, webhook_id, external_id,
        )


async def update_order(conn: asyncpg.Connection, integration: Integration, external_id: str, body: bytes,
                       normalized: dict) -> None:
    """The platform sent the order again with changed content: keep the latest, count the revision."""
    await conn.execute(
        "UPDATE inbound_orders SET body = $3, normalized = $4::jsonb, revision = revision + 1, updated_at = now()"
        " WHERE integration_id = $1 AND external_id = $2",
        integration.id, external_id, body, json.dumps(normalized),
    )
    await conn.execute("UPDATE integrations SET last_inbound_order_at = now() WHERE id = $1", integration.id)


async def add_rejection(conn: asyncpg.Connection, integration: Integration, webhook_id: str | None, error: str,
                        body: bytes) -> None:
    """Keep a refused payload for inspection, bounded: the newest KEEP_REJECTIONS per integration."""
    await conn.execute(
        "INSERT INTO inbound_rejections (tenant_id, integration_id, webhook_id, error, body_bytes, body)"
        " VALUES ($1, $2, $3, $4, $5, $6)",
        integration.tenant_id, integration.id, webhook_id, error[:2000], len(body), body[:KEEP_REJECTED_BYTES],
    )
    await conn.execute(
        "DELETE FROM inbound_rejections WHERE integration_id = $1 AND id <= (SELECT id FROM inbound_rejections"
        " WHERE integration_id = $1 ORDER BY id DESC OFFSET $2 LIMIT 1)",
        integration.id, KEEP_REJECTIONS,
    )

