"""Reads and writes of the integrations table, always scoped to one tenant. A deleted integration
(``deleted_at`` set) is invisible here: not listed, not found, not changed."""
from __future__ import annotations

import json
from datetime import datetime
from typing import Any

import asyncpg

from posint_common.contracts.integrations import IntegrationView

from integrations.domain.model import Integration, Sealed

COLUMNS = "id, name, integration_type, provider, is_active, last_sync_at"
DETAIL_COLUMNS = (
    "id, tenant_id, name, integration_type, provider, is_active, config::text AS config, last_sync_at, created_at,"
    " updated_at, last_sync_status, last_sync_error, last_inbound_order_at, token_expires_at,"
    " credentials, credentials_key_id, inbound_secret, inbound_secret_key_id"
)
LIVE = "tenant_id = $1 AND id = $2 AND deleted_at IS NULL"


def _integration(row: asyncpg.Record | None) -> Integration | None:
    if row is None:
        return None
    values = dict(row)
    credentials = _sealed(values.pop("credentials"), values.pop("credentials_key_id"))
    inbound_secret = _sealed(values.pop("inbound_secret"), values.pop("inbound_secret_key_id"))
    values["config"] = json.loads(values["config"])
    return Integration(**values, credentials=credentials, inbound_secret=inbound_secret)


def _sealed(blob: bytes | None, key_id: str | None) -> Sealed | None:
    return Sealed(key_id, bytes(blob)) if blob is not None else None


class IntegrationRepository:
    def __init__(self, conn: asyncpg.Connection, tenant_id: str) -> None:
        self._conn = conn
        self._tenant_id = tenant_id

    async def page(self, limit: int, after_id: int | None) -> list[IntegrationView]:
        rows = await self._conn.fetch(
            f"SELECT {COLUMNS} FROM integrations WHERE tenant_id = $1 AND id > $2 AND deleted_at IS NULL"
            " ORDER BY id LIMIT $3",
            self._tenant_id,
            after_id or 0,
            limit,
        )
        return [IntegrationView(**dict(row)) for row in rows]

    async def add(
        self, provider: str, name: str, integration_type: str, last_sync_at: datetime | None = None,
        config: dict[str, Any] | None = None,
    ) -> int | None:
        """Insert unless the tenant already has a live integration of this provider; returns the new
        id or None. No secrets: for seeds and tests."""
        return await self._conn.fetchval(
            "INSERT INTO integrations (tenant_id, name, integration_type, provider, last_sync_at, config)"
            " VALUES ($1, $2, $3, $4, $5, $6::jsonb)"
            " ON CONFLICT (tenant_id, provider) WHERE deleted_at IS NULL DO NOTHING RETURNING id",
            self._tenant_id,
            name,
            integration_type,
            provider,
            last_sync_at,
            json.dumps(config or {}),
        )

    async def next_id(self) -> int:
        """An id for a row about to be inserted: its secrets are sealed to it before the insert."""
        return await self._conn.fetchval("SELECT nextval(pg_get_serial_sequence('integrations', 'id'))")

    async def create(
        self, id: int, name: str, integration_type: str, provider: str, config: dict[str, Any],
        credentials: Sealed, inbound_secret: Sealed,
    ) -> Integration | None:
        """The new integration, or None when the tenant already has a live one of this provider."""
        row = await self._conn.fetchrow(
            "INSERT INTO integrations (id, tenant_id, name, integration_type, provider, config,"
            " credentials, credentials_key_id, inbound_secret, inbound_secret_key_id)"
            " VALUES ($1, $2, $3, $4, $5, $6::jsonb, $7, $8, $9, $10)"
            f" ON CONFLICT (tenant_id, provider) WHERE deleted_at IS NULL DO NOTHING RETURNING {DETAIL_COLUMNS}",
            id, self._tenant_id, name, integration_type, provider, json.dumps(config),
            credentials.blob, credentials.key_id, inbound_secret.blob, inbound_secret.key_id,
        )
        return _integration(row)

    async def live_id(self, provider: str) -> int | None:
        return await self._conn.fetchval(
            "SELECT id FROM integrations WHERE tenant_id = $1 AND provider = $2 AND deleted_at IS NULL",
            self._tenant_id, provider,
        )

    async def get(self, id: int, *, for_update: bool = False) -> Integration | None:
        lock = " FOR UPDATE" if for_update else ""
        row = await self._conn.fetchrow(f"SELECT {DETAIL_COLUMNS} FROM integrations WHERE {LIVE}{lock}", self._tenant_id, id)
        return _integration(row)

    async def update(
        self, id: int, *, name: str, is_active: bool, config: dict[str, Any], credentials: Sealed | None,
    ) -> Integration | None:
        """Write the new state; ``credentials`` None keeps the stored ones."""
        row = await self._conn.fetchrow(
            "UPDATE integrations SET name = $3, is_active = $4, config = $5::jsonb,"
            " credentials = coalesce($6, credentials), credentials_key_id = coalesce($7, credentials_key_id),"
            f" updated_at = now() WHERE {LIVE} RETURNING {DETAIL_COLUMNS}",
            self._tenant_id, id, name, is_active, json.dumps(config),
            credentials.blob if credentials else None, credentials.key_id if credentials else None,
        )
        return _integration(row)

    async def delete(self, id: int) -> datetime | None:
        """Deactivate and hide; returns when, or None if there was no such live integration."""
        return await self._conn.fetchval(
            f"UPDATE integrations SET is_active = false, deleted_at = now(), updated_at = now() WHERE {LIVE}"
            " RETURNING deleted_at",
            self._tenant_id, id,
        )


async def sealed_key_ids(conn: asyncpg.Connection) -> dict[str, int]:
    """Every key id that seals a stored value, with how many values: what the key ring must hold."""
    rows = await conn.fetch(
        "SELECT key_id, count(*) AS n FROM ("
        " SELECT credentials_key_id AS key_id FROM integrations WHERE credentials_key_id IS NOT NULL"
        " UNION ALL SELECT inbound_secret_key_id FROM integrations WHERE inbound_secret_key_id IS NOT NULL"
        ") AS sealed GROUP BY key_id"
    )
    return {row["key_id"]: row["n"] for row in rows}
