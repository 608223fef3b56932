"""Tenants and their API keys. Keys are shown once at creation and stored only as SHA-256 digests."""
from __future__ import annotations

import hashlib
import secrets
import time
import uuid

import asyncpg

from posint_common import outbox
from posint_common.contracts import topics
from posint_common.contracts.tenants import TENANT_CREATED, TenantCreated
from posint_common.envelope import Envelope

from gateway import SCHEMA

KEY_PREFIX = "pk_"
MAX_CACHED_KEYS = 10_000


class TenantExists(Exception):
    pass


def digest(api_key: str) -> str:
    return hashlib.sha256(api_key.encode()).hexdigest()


async def issue_api_key(conn: asyncpg.Connection, tenant_id: str) -> str:
    """A new key for the tenant; only its digest is stored, so this is the one time it is seen."""
    api_key = KEY_PREFIX + secrets.token_urlsafe(32)
    await conn.execute(
        "INSERT INTO api_keys (key_hash, tenant_id, key_prefix) VALUES ($1, $2, $3)",
        digest(api_key),
        tenant_id,
        api_key[:8],
    )
    return api_key


async def create_tenant(pool: asyncpg.Pool, name: str, source: str = "posint/gateway") -> tuple[str, str]:
    """Create a tenant with a fresh API key and announce it; returns (tenant_id, api_key)."""
    tenant_id = str(uuid.uuid4())
    async with pool.acquire() as conn, conn.transaction():
        try:
            await conn.execute("INSERT INTO tenants (id, name) VALUES ($1, $2)", tenant_id, name)
        except asyncpg.UniqueViolationError:
            raise TenantExists(name) from None
        api_key = await issue_api_key(conn, tenant_id)
        event = Envelope.wrap(TenantCreated(tenant_id=tenant_id, name=name), source=source, type=TENANT_CREATED, subject=tenant_id)
        await outbox.add(conn, SCHEMA, topics.GATEWAY_EVENTS, event)
    return tenant_id, api_key


async def tenant_id_by_name(pool: asyncpg.Pool, name: str) -> str | None:
    return await pool.fetchval("SELECT id FROM tenants WHERE name = $1", name)


class Authenticator:
    """Maps an API key to its tenant, caching hits briefly so auth is not a query per request."""

    def __init__(self, pool: asyncpg.Pool, cache_seconds: float) -> None:
        self._pool = pool
        self._cache_seconds = cache_seconds
        self._cache: dict[str, tuple[str, float]] = {}

    async def tenant_for(self, api_key: str) -> str | None:
        key_hash = digest(api_key)
        cached = self._cache.get(key_hash)
        now = time.monotonic()
        if cached and cached[1] > now:
            return cached[0]
        tenant_id = await self._pool.fetchval(
            "SELECT tenant_id FROM api_keys WHERE key_hash = $1 AND revoked_at IS NULL", key_hash
        )
        if tenant_id is not None and self._cache_seconds > 0:
            if len(self._cache) >= MAX_CACHED_KEYS:
                self._cache.clear()
            self._cache[key_hash] = (tenant_id, now + self._cache_seconds)
        return tenant_id
