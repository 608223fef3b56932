"""Tenants and their API keys. Keys are shown once at creation and stored only as SHA-256 digests."""
from __future__ import annotations

import asyncio
import hashlib
import re
import secrets
import time
import uuid

import asyncpg

from posint_common import metrics, outbox
from posint_common.contracts import topics
from posint_common.contracts.tenants import TENANT_CREATED, TenantCreated
from posint_common.envelope import Envelope

from gateway import SCHEMA

KEY_PREFIX = "pk_"
MAX_CACHED_KEYS = 10_000  # per table (known keys, unknown keys)
KEY_SHAPE = re.compile(r"pk_[A-Za-z0-9_-]{16,128}")  # what issue_api_key makes (43 characters after the prefix)


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
    """Maps an API key to its tenant without a query per request: known keys are cached for
    ``cache_seconds`` (the revocation delay), unknown ones for ``miss_cache_seconds``, each in its own
    bounded table (a flood of bad keys cannot push out the good ones), and concurrent lookups of one
    key share one query. A credential that is not shaped like a key never reaches Postgres."""

    def __init__(self, pool: asyncpg.Pool, cache_seconds: float, miss_cache_seconds: float = 5.0) -> None:
        self._pool = pool
        self._hits = _ExpiringTable(cache_seconds)
        self._misses = _ExpiringTable(miss_cache_seconds)
        self._lookups: dict[str, asyncio.Task] = {}

    async def tenant_for(self, api_key: str) -> str | None:
        if not KEY_SHAPE.fullmatch(api_key):
            return None
        key_hash = digest(api_key)
        now = time.monotonic()
        if (tenant_id := self._hits.get(key_hash, now)) is not None:
            return tenant_id
        if self._misses.get(key_hash, now) is not None:
            return None
        lookup = self._lookups.get(key_hash)
        if lookup is None:
            lookup = self._lookups[key_hash] = asyncio.ensure_future(self._lookup(key_hash))
            lookup.add_done_callback(lambda _done: self._lookups.pop(key_hash, None))
        return await asyncio.shield(lookup)  # a waiter that goes away does not cancel the others' query

    async def _lookup(self, key_hash: str) -> str | None:
        tenant_id = await self._pool.fetchval(
            "SELECT tenant_id FROM api_keys WHERE key_hash = $1 AND revoked_at IS NULL", key_hash
        )
        metrics.AUTH_LOOKUPS.labels("found" if tenant_id else "missing").inc()
        now = time.monotonic()
        if tenant_id is None:
            self._misses.put(key_hash, True, now)
        else:
            self._hits.put(key_hash, tenant_id, now)
        return tenant_id


class _ExpiringTable:
    """At most MAX_CACHED_KEYS entries, each kept ``seconds``; when full, the oldest entry goes."""

    def __init__(self, seconds: float) -> None:
        self._seconds = seconds
        self._entries: dict[str, tuple[object, float]] = {}

    def get(self, key: str, now: float) -> object | None:
        entry = self._entries.get(key)
        return entry[0] if entry is not None and entry[1] > now else None

    def put(self, key: str, value: object, now: float) -> None:
        if self._seconds <= 0:
            return
        self._entries.pop(key, None)
        if len(self._entries) >= MAX_CACHED_KEYS:
            del self._entries[next(iter(self._entries))]
        self._entries[key] = (value, now + self._seconds)
