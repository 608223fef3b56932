"""Reads and writes of the dispatcher's tables, endpoints always scoped to one tenant. A deleted
endpoint (``deleted_at`` set) is invisible here."""
from __future__ import annotations

from datetime import datetime

import asyncpg

from posint_common.vault import Sealed

from webhook_dispatcher.domain.model import Endpoint

COLUMNS = "id, tenant_id, integration_id, url, events, is_active, secret, secret_key_id, created_at, updated_at"
LIVE = "tenant_id = $1 AND id = $2 AND deleted_at IS NULL"


def _endpoint(row: asyncpg.Record | None) -> Endpoint | None:
    if row is None:
        return None
    values = dict(row)
    sealed = Sealed(values.pop("secret_key_id"), bytes(values.pop("secret")))
    return Endpoint(**values, secret=sealed)


class EndpointRepository:
    def __init__(self, conn: asyncpg.Connection, tenant_id: str) -> None:
        self._conn = conn
        self._tenant_id = tenant_id

    async def integration_known(self, integration_id: int) -> bool:
        """The integration is this tenant's and not deleted (as integrations.events told us)."""
        return bool(await self._conn.fetchval(
            "SELECT true FROM known_integrations WHERE id = $1 AND tenant_id = $2 AND NOT deleted",
            integration_id, self._tenant_id,
        ))

    async def next_id(self) -> int:
        """An id for a row about to be inserted: its secret is sealed to it before the insert."""
        return await self._conn.fetchval("SELECT nextval(pg_get_serial_sequence('endpoints', 'id'))")

    async def create(self, id: int, integration_id: int, url: str, events: list[str], secret: Sealed) -> Endpoint:
        return _endpoint(await self._conn.fetchrow(
            "INSERT INTO endpoints (id, tenant_id, integration_id, url, events, secret, secret_key_id)"
            f" VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING {COLUMNS}",
            id, self._tenant_id, integration_id, url, events, secret.blob, secret.key_id,
        ))

    async def get(self, id: int, *, for_update: bool = False) -> Endpoint | None:
        lock = " FOR UPDATE" if for_update else ""
        return _endpoint(await self._conn.fetchrow(f"SELECT {COLUMNS} FROM endpoints WHERE {LIVE}{lock}", self._tenant_id, id))

    async def page(self, limit: int, after_id: int | None) -> list[Endpoint]:
        rows = await self._conn.fetch(
            f"SELECT {COLUMNS} FROM endpoints WHERE tenant_id = $1 AND id > $2 AND deleted_at IS NULL ORDER BY id LIMIT $3",
            self._tenant_id, after_id or 0, limit,
        )
        return [_endpoint(row) for row in rows]

    async def update(self, id: int, *, url: str, events: list[str], is_active: bool) -> Endpoint:
        return _endpoint(await self._conn.fetchrow(
            "UPDATE endpoints SET url = $3, events = $4, is_active = $5, updated_at = now(),"
            # switched on again by the tenant: a fresh start (a disabled endpoint stays off until then)
            " failing_since = CASE WHEN $5 AND NOT is_active THEN NULL ELSE failing_since END,"
            " disabled_at = CASE WHEN $5 THEN NULL ELSE disabled_at END,"
            f" disabled_reason = CASE WHEN $5 THEN NULL ELSE disabled_reason END WHERE {LIVE} RETURNING {COLUMNS}",
            self._tenant_id, id, url, events, is_active,
        ))

    async def rotate(self, id: int, secret: Sealed, overlap_s: float) -> datetime:
        """The new secret signs from now on; the current one too, until the returned time."""
        return await self._conn.fetchval(
            "UPDATE endpoints SET previous_secret = secret, previous_secret_key_id = secret_key_id,"
            " previous_secret_until = now() + make_interval(secs => $5), secret = $3, secret_key_id = $4,"
            f" updated_at = now() WHERE {LIVE} RETURNING previous_secret_until",
            self._tenant_id, id, secret.blob, secret.key_id, overlap_s,
        )

    async def delete(self, id: int) -> None:
        await self._conn.execute(f"UPDATE endpoints SET deleted_at = now(), is_active = false WHERE {LIVE}", self._tenant_id, id)


async def learn_integration(conn: asyncpg.Connection, id: int, tenant_id: str, provider: str, *, is_active: bool,
                            deleted: bool, at: datetime) -> None:
    """Record what an integration event says; an older event never overwrites a newer one."""
    await conn.execute(
        "INSERT INTO known_integrations (id, tenant_id, provider, is_active, deleted, updated_at)"
        " VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (id) DO UPDATE SET is_active = EXCLUDED.is_active,"
        " deleted = known_integrations.deleted OR EXCLUDED.deleted, updated_at = EXCLUDED.updated_at"
        " WHERE known_integrations.updated_at <= EXCLUDED.updated_at OR EXCLUDED.deleted",
        id, tenant_id, provider, is_active, deleted, at,
    )
