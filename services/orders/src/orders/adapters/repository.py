"""Reads and writes of orders and their status history, always scoped to one tenant."""
from __future__ import annotations

import json
from datetime import datetime, timedelta
from typing import Any

import asyncpg

from orders.domain.lifecycle import Source, Status
from orders.domain.model import Change, IntegrationSettings, Order

COLUMNS = (
    "id, tenant_id, integration_id, provider, external_id, status, normalized::text AS normalized,"
    " raw_data::text AS raw_data, accept_by, injection_status, pos_order_id, created_at, updated_at,"
    " injection_attempt, injection_error, prep_time_minutes, platform_sync::text AS platform_sync"
)


# An order change and its history line in one statement (one round trip): the line goes from
# ``$from`` to the status the change left.
RECORDED = """
WITH changed AS ({update} RETURNING {columns}),
logged AS (INSERT INTO status_history (order_id, from_status, to_status, source, reason)
           SELECT id, ${n}::text, status, ${n1}::text, ${n2}::text FROM changed)
SELECT * FROM changed
"""


def recorded(update: str, args: int) -> str:
    """``update`` (an UPDATE of one order, ``args`` parameters) that also writes its history line."""
    return RECORDED.format(update=update, columns=COLUMNS, n=args + 1, n1=args + 2, n2=args + 3)


# A new order (none when (tenant, integration, external id) exists), its first history line and
# its integration's settings, in one statement.
ADD_RECEIVED = f"""
WITH s AS (
  SELECT auto_accept, prep_time_minutes, accept_window_seconds FROM integration_settings
  WHERE integration_id = $2 AND tenant_id = $1),
added AS (
  INSERT INTO orders (tenant_id, integration_id, provider, external_id, status, normalized, raw_data, received_at,
                      accept_by)
  VALUES ($1, $2, $3, $4, 'received', $5::jsonb, $6::jsonb, $7,
          $7::timestamptz + coalesce(nullif((SELECT accept_window_seconds FROM s), 0) * interval '1 second', $8::interval))
  ON CONFLICT (tenant_id, integration_id, external_id) DO NOTHING RETURNING {COLUMNS}),
logged AS (
  INSERT INTO status_history (order_id, from_status, to_status, source) SELECT id, NULL, 'received', 'platform' FROM added)
SELECT added.*, s.auto_accept AS s_auto_accept, s.prep_time_minutes AS s_prep_time_minutes,
       s.accept_window_seconds AS s_accept_window_seconds, s.auto_accept IS NOT NULL AS s_found
FROM added LEFT JOIN s ON true
"""


def _order(row: asyncpg.Record | None) -> Order | None:
    if row is None:
        return None
    values = dict(row)
    values["status"] = Status(values["status"])
    values["order"] = json.loads(values.pop("normalized"))
    values["raw_data"] = json.loads(values["raw_data"])
    values["platform_sync"] = json.loads(values["platform_sync"]) if values["platform_sync"] else None
    return Order(**values)


class OrderRepository:
    def __init__(self, conn: asyncpg.Connection, tenant_id: str) -> None:
        self._conn = conn
        self._tenant_id = tenant_id

    async def add(self, integration_id: int, provider: str, external_id: str, normalized: dict[str, Any],
                  raw_data: dict[str, Any], received_at: datetime, accept_by: datetime | None) -> Order | None:
        """The new order in status ``received``, or None when (tenant, integration, external id) exists."""
        row = await self._conn.fetchrow(
            "INSERT INTO orders (tenant_id, integration_id, provider, external_id, status, normalized, raw_data,"
            " received_at, accept_by) VALUES ($1, $2, $3, $4, 'received', $5::jsonb, $6::jsonb, $7, $8)"
            f" ON CONFLICT (tenant_id, integration_id, external_id) DO NOTHING RETURNING {COLUMNS}",
            self._tenant_id, integration_id, provider, external_id, json.dumps(normalized), json.dumps(raw_data),
            received_at, accept_by,
        )
        return _order(row)

    async def add_received(self, integration_id: int, provider: str, external_id: str, normalized: dict[str, Any],
                           raw_data: dict[str, Any], received_at: datetime,
                           default_window: timedelta) -> tuple[Order | None, IntegrationSettings]:
        """As ``add`` with its first history line (``received``, source ``platform``) and the
        integration's settings, in one round trip: ``accept_by`` = ``received_at`` + the
        integration's ``accept_window_seconds`` if set, else ``default_window`` (the provider's; see
        ``orders.domain.model.accept_by``). (None, defaults) when the order exists."""
        row = await self._conn.fetchrow(ADD_RECEIVED, self._tenant_id, integration_id, provider, external_id,
                                        json.dumps(normalized), json.dumps(raw_data), received_at, default_window)
        if row is None:
            return None, IntegrationSettings()
        values = dict(row)
        settings = {name: values.pop(f"s_{name}") for name in ("auto_accept", "prep_time_minutes", "accept_window_seconds")}
        found = values.pop("s_found")
        return _order(values), IntegrationSettings(**settings) if found else IntegrationSettings()

    async def by_external_id(self, integration_id: int, external_id: str) -> Order | None:
        row = await self._conn.fetchrow(
            f"SELECT {COLUMNS} FROM orders WHERE tenant_id = $1 AND integration_id = $2 AND external_id = $3 FOR UPDATE",
            self._tenant_id, integration_id, external_id,
        )
        return _order(row)

    async def get(self, id: int, *, for_update: bool = False) -> Order | None:
        lock = " FOR UPDATE" if for_update else ""
        row = await self._conn.fetchrow(f"SELECT {COLUMNS} FROM orders WHERE tenant_id = $1 AND id = $2{lock}",
                                        self._tenant_id, id)
        return _order(row)

    async def get_with_settings(self, id: int) -> tuple[Order | None, IntegrationSettings]:
        """The order locked for this transaction, with its integration's order settings (one round trip)."""
        row = await self._conn.fetchrow(
            "SELECT o.*, s.auto_accept AS s_auto_accept, s.prep_time_minutes AS s_prep_time_minutes,"
            " s.accept_window_seconds AS s_accept_window_seconds, s.integration_id IS NOT NULL AS s_found"
            f" FROM (SELECT {COLUMNS} FROM orders WHERE tenant_id = $1 AND id = $2 FOR UPDATE) AS o"
            " LEFT JOIN integration_settings s ON s.integration_id = o.integration_id AND s.tenant_id = o.tenant_id",
            self._tenant_id, id,
        )
        if row is None:
            return None, IntegrationSettings()
        values = dict(row)
        settings = {name: values.pop(f"s_{name}") for name in ("auto_accept", "prep_time_minutes", "accept_window_seconds")}
        found = values.pop("s_found")
        return _order(values), IntegrationSettings(**settings) if found else IntegrationSettings()

    async def page(self, limit: int, after_id: int | None, integration_id: int | None, statuses: list[str] | None,
                   created_after: datetime | None, created_before: datetime | None) -> list[Order]:
        """Newest first by id: an order inserted while a client pages gets a higher id, so it never
        shifts the pages after the cursor."""
        rows = await self._conn.fetch(
            f"SELECT {COLUMNS} FROM orders WHERE tenant_id = $1 AND ($2::bigint IS NULL OR id < $2)"
            " AND ($3::bigint IS NULL OR integration_id = $3) AND ($4::text[] IS NULL OR status = ANY($4))"
            " AND ($5::timestamptz IS NULL OR created_at > $5) AND ($6::timestamptz IS NULL OR created_at < $6)"
            " ORDER BY id DESC LIMIT $7",
            self._tenant_id, after_id, integration_id, statuses, created_after, created_before, limit,
        )
        return [_order(row) for row in rows]

    async def set_content(self, id: int, normalized: dict[str, Any], raw_data: dict[str, Any]) -> Order:
        row = await self._conn.fetchrow(
            "UPDATE orders SET normalized = $3::jsonb, raw_data = $4::jsonb, updated_at = now()"
            f" WHERE tenant_id = $1 AND id = $2 RETURNING {COLUMNS}",
            self._tenant_id, id, json.dumps(normalized), json.dumps(raw_data),
        )
        return _order(row)

    async def set_status(self, id: int, status: Status) -> Order:
        row = await self._conn.fetchrow(
            f"UPDATE orders SET status = $3, updated_at = now() WHERE tenant_id = $1 AND id = $2 RETURNING {COLUMNS}",
            self._tenant_id, id, status.value,
        )
        return _order(row)

    async def transition(self, id: int, from_status: Status, status: Status, source: Source,
                         reason: str | None = None) -> Order:
        """The new status with its history line."""
        row = await self._conn.fetchrow(
            recorded("UPDATE orders SET status = $3, updated_at = now() WHERE tenant_id = $1 AND id = $2", 3),
            self._tenant_id, id, status.value, from_status.value, source.value, reason,
        )
        return _order(row)

    async def accept(self, id: int, from_status: Status, prep_time_minutes: int, source: Source) -> Order:
        """``accepted`` with its history line, and its first (or next) POS injection pending."""
        row = await self._conn.fetchrow(
            recorded("UPDATE orders SET status = 'accepted', prep_time_minutes = $3, injection_status = 'pending',"
                     " injection_attempt = injection_attempt + 1, injection_error = NULL, updated_at = now()"
                     " WHERE tenant_id = $1 AND id = $2", 3),
            self._tenant_id, id, prep_time_minutes, from_status.value, source.value, None,
        )
        return _order(row)

    async def retry_injection(self, id: int) -> Order:
        row = await self._conn.fetchrow(
            "UPDATE orders SET injection_status = 'pending', injection_attempt = injection_attempt + 1,"
            f" injection_error = NULL, updated_at = now() WHERE tenant_id = $1 AND id = $2 RETURNING {COLUMNS}",
            self._tenant_id, id,
        )
        return _order(row)

    async def set_injection(self, id: int, from_status: Status, status: str, source: Source, reason: str,
                            pos_order_id: str | None = None, error: str | None = None) -> Order:
        """The POS's answer on the injection, with a history line (status unchanged) saying it."""
        row = await self._conn.fetchrow(
            recorded("UPDATE orders SET injection_status = $3, pos_order_id = coalesce($4, pos_order_id),"
                     " injection_error = $5, updated_at = now() WHERE tenant_id = $1 AND id = $2", 5),
            self._tenant_id, id, status, pos_order_id, error, from_status.value, source.value, reason,
        )
        return _order(row)

    async def set_platform_sync(self, id: int, integration_id: int, sync: dict[str, Any], at: datetime) -> bool:
        """Keep the latest push report; False when the order is unknown here or the report is older
        than the one kept (reports of one order arrive in order, but a replay must not go back)."""
        row = await self._conn.fetchval(
            "UPDATE orders SET platform_sync = $4::jsonb, updated_at = now()"
            " WHERE tenant_id = $1 AND id = $2 AND integration_id = $3"
            " AND (platform_sync IS NULL OR (platform_sync->>'at')::timestamptz <= $5) RETURNING id",
            self._tenant_id, id, integration_id, json.dumps(sync), at,
        )
        return row is not None

    async def add_wait(self, order_id: int, command_id: str, correlationid: str | None, reply_to: str,
                       answer_by: datetime) -> None:
        await self._conn.execute(
            "INSERT INTO reply_waits (order_id, tenant_id, command_id, correlationid, reply_to, answer_by)"
            " VALUES ($1, $2, $3, $4, $5, $6)",
            order_id, self._tenant_id, command_id, correlationid, reply_to, answer_by,
        )

    async def take_waits(self, order_id: int) -> list[asyncpg.Record]:
        """The requests waiting for this order's POS answer, removed: each is answered once."""
        return await self._conn.fetch(
            "DELETE FROM reply_waits WHERE order_id = $1 AND tenant_id = $2 RETURNING command_id, correlationid, reply_to",
            order_id, self._tenant_id,
        )

    async def save_integration(self, integration_id: int, provider: str, settings: IntegrationSettings) -> None:
        await self._conn.execute(
            "INSERT INTO integration_settings (integration_id, tenant_id, provider, auto_accept, prep_time_minutes,"
            " accept_window_seconds) VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (integration_id) DO UPDATE SET"
            " auto_accept = $4, prep_time_minutes = $5, accept_window_seconds = $6, updated_at = now()"
            " WHERE integration_settings.tenant_id = $2",
            integration_id, self._tenant_id, provider, settings.auto_accept, settings.prep_time_minutes,
            settings.accept_window_seconds,
        )

    async def record(self, order_id: int, from_status: Status | None, to_status: Status, source: Source,
                     reason: str | None = None) -> None:
        await self._conn.execute(
            "INSERT INTO status_history (order_id, from_status, to_status, source, reason) VALUES ($1, $2, $3, $4, $5)",
            order_id, from_status.value if from_status else None, to_status.value, source.value, reason,
        )

    async def history(self, order_id: int) -> list[Change]:
        rows = await self._conn.fetch(
            "SELECT from_status, to_status, source, reason, at FROM status_history WHERE order_id = $1 ORDER BY id",
            order_id,
        )
        return [Change(Status(r["from_status"]) if r["from_status"] else None, Status(r["to_status"]), r["source"],
                       r["reason"], r["at"]) for r in rows]


async def what_is_due(pool_or_conn) -> tuple[bool, bool]:
    """Whether any received order is past its deadline, and any wait's time is up: one statement on
    the two due indexes, no transaction and no lock, so an idle tick costs one round trip."""
    row = await pool_or_conn.fetchrow(
        "SELECT EXISTS (SELECT 1 FROM orders WHERE status = 'received' AND accept_by <= now()) AS orders,"
        " EXISTS (SELECT 1 FROM reply_waits WHERE answer_by <= now()) AS waits"
    )
    return row["orders"], row["waits"]


async def due_orders(conn: asyncpg.Connection, limit: int) -> list[asyncpg.Record]:
    """Received orders past their acceptance deadline, locked; one an accept holds is skipped (it is
    decided there, and the next tick sees what it left)."""
    return await conn.fetch(
        "SELECT id, tenant_id FROM orders WHERE status = 'received' AND accept_by <= now()"
        " ORDER BY accept_by LIMIT $1 FOR UPDATE SKIP LOCKED", limit,
    )


async def due_waits(conn: asyncpg.Connection, limit: int) -> list[asyncpg.Record]:
    """Waits whose time is up, removed (their reply is written in the same transaction)."""
    return await conn.fetch(
        "DELETE FROM reply_waits WHERE id IN (SELECT id FROM reply_waits WHERE answer_by <= now()"
        " ORDER BY answer_by LIMIT $1 FOR UPDATE SKIP LOCKED)"
        " RETURNING order_id, tenant_id, command_id, correlationid, reply_to", limit,
    )


async def unaccepted(pool_or_conn, near_s: float) -> list[tuple[str, int, int]]:
    """Per provider: received orders, and those whose accept_by is less than ``near_s`` away. One
    query on the partial index of received orders (``orders_due``)."""
    rows = await pool_or_conn.fetch(
        "SELECT provider, count(*) AS received,"
        " count(*) FILTER (WHERE accept_by < now() + make_interval(secs => $1)) AS near"
        " FROM orders WHERE status = 'received' GROUP BY provider", float(near_s),
    )
    return [(row["provider"], row["received"], row["near"]) for row in rows]
