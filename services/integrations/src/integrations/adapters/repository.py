"""Reads and writes of the integrations table, always scoped to one tenant."""
from __future__ import annotations

from datetime import datetime

import asyncpg

from posint_common.contracts.integrations import IntegrationView

COLUMNS = "id, name, integration_type, provider, is_active, last_sync_at"


class IntegrationRepository:
    def __init__(self, conn: asyncpg.Connection, tenant_id: str) -> None:
        self._conn = conn
        self._tenant_id = tenant_id

    async def page(self, limit: int, after_id: int | None) -> list[IntegrationView]:
        rows = await self._conn.fetch(
            f"SELECT {COLUMNS} FROM integrations WHERE tenant_id = $1 AND id > $2 ORDER BY id LIMIT $3",
            self._tenant_id,
            after_id or 0,
            limit,
        )
        return [IntegrationView(**dict(row)) for row in rows]

    async def add(self, provider: str, name: str, integration_type: str, last_sync_at: datetime | None = None) -> int | None:
        """Insert unless the tenant already has this provider; returns the new id or None."""
        return await self._conn.fetchval(
            "INSERT INTO integrations (tenant_id, name, integration_type, provider, last_sync_at)"
            " VALUES ($1, $2, $3, $4, $5) ON CONFLICT (tenant_id, provider) DO NOTHING RETURNING id",
            self._tenant_id,
            name,
            integration_type,
            provider,
            last_sync_at,
        )
