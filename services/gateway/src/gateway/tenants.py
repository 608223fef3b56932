"""Tenants and their API keys. A tenant has any number of named keys, each with a scope (``read``:
GET and HEAD only; ``write``: everything). A key is shown once at creation and stored only as its
SHA-256 digest; its first characters (``key_prefix``, e.g. ``pk_Ab3dE6gH9``) name it in lists and
the CLI. Rotation issues a new key and leaves the old one valid until its ``expires_at``."""
from __future__ import annotations

import asyncio
import hashlib
import re
import secrets
import time
import uuid
from dataclasses import dataclass
from datetime import datetime

import asyncpg

from posint_common import metrics, outbox
from posint_common.contracts import topics
from posint_common.contracts.tenants import TENANT_CREATED, TenantCreated
from posint_common.envelope import Envelope
from posint_common.log import get_logger

from gateway import SCHEMA

log = get_logger(__name__)

KEY_PREFIX = "pk_"
PREFIX_LENGTH = 12  # "pk_" and 9 random characters (54 bits): unique, shown in lists (older keys: 8)
MAX_CACHED_KEYS = 10_000  # per table (known keys, unknown keys)
KEY_SHAPE = re.compile(r"pk_[A-Za-z0-9_-]{16,128}")  # what issue_api_key makes (43 characters after the prefix)
SCOPES = ("read", "write")
READ_METHODS = frozenset({"GET", "HEAD"})  # all a read key may do
LAST_USED_RESOLUTION_S = 60  # last_used_at is written at most once a minute per key and gateway process
DEFAULT_ROTATION_GRACE_HOURS = 24.0


class TenantExists(Exception):
    pass


def digest(api_key: str) -> str:
    return hashlib.sha256(api_key.encode()).hexdigest()


async def issue_api_key(conn: asyncpg.Connection, tenant_id: str, name: str = "default", scope: str = "write") -> str:
    """A new key for the tenant; only its digest is stored, so this is the one time it is seen."""
    if scope not in SCOPES:
        raise ValueError(f"scope must be one of {SCOPES}")
    while True:
        api_key = KEY_PREFIX + secrets.token_urlsafe(32)
        try:
            async with conn.transaction():  # a savepoint when the caller holds a transaction
                await conn.execute(
                    "INSERT INTO api_keys (key_hash, tenant_id, key_prefix, name, scope) VALUES ($1, $2, $3, $4, $5)",
                    digest(api_key), tenant_id, api_key[:PREFIX_LENGTH], name, scope,
                )
            return api_key
        except asyncpg.UniqueViolationError:  # a prefix already taken (2^-54 per pair): draw again
            continue


class KeyNotFound(Exception):
    pass


@dataclass(frozen=True)
class KeyInfo:
    prefix: str
    name: str
    scope: str
    created_at: datetime
    last_used_at: datetime | None
    expires_at: datetime | None
    revoked_at: datetime | None


async def create_key(pool: asyncpg.Pool, tenant_name: str, name: str, scope: str) -> str:
    async with pool.acquire() as conn, conn.transaction():
        tenant_id = await conn.fetchval("SELECT id FROM tenants WHERE name = $1", tenant_name)
        if tenant_id is None:
            raise KeyNotFound(f"no tenant named {tenant_name!r}")
        return await issue_api_key(conn, tenant_id, name, scope)


async def list_keys(pool: asyncpg.Pool, tenant_name: str) -> list[KeyInfo]:
    rows = await pool.fetch(
        "SELECT key_prefix, k.name, scope, k.created_at, last_used_at, expires_at, revoked_at"
        " FROM api_keys k JOIN tenants t ON t.id = k.tenant_id WHERE t.name = $1 ORDER BY k.created_at, key_prefix",
        tenant_name,
    )
    if not rows and await tenant_id_by_name(pool, tenant_name) is None:
        raise KeyNotFound(f"no tenant named {tenant_name!r}")
    return [KeyInfo(*row) for row in rows]


async def rotate_key(pool: asyncpg.Pool, prefix: str, grace_hours: float = DEFAULT_ROTATION_GRACE_HOURS) -> tuple[str, datetime]:
    """A new key with the old one's tenant, name and scope; the old one stays valid ``grace_hours``
    (never longer than it already would). Returns the new key and when the old one stops working."""
    async with pool.acquire() as conn, conn.transaction():
        old = await conn.fetchrow(
            "UPDATE api_keys SET expires_at = LEAST(COALESCE(expires_at, 'infinity'), now() + $2::float8 * interval '1 hour')"
            " WHERE key_prefix = $1 AND revoked_at IS NULL AND (expires_at IS NULL OR expires_at > now())"
            " RETURNING tenant_id, name, scope, expires_at",
            prefix, grace_hours,
        )
        if old is None:
            raise KeyNotFound(f"no valid key {prefix!r}")
        return await issue_api_key(conn, old["tenant_id"], old["name"], old["scope"]), old["expires_at"]


async def revoke_key(pool: asyncpg.Pool, prefix: str) -> None:
    """The key stops working at once in Postgres, and within AUTH_CACHE_SECONDS in every gateway."""
    if await pool.fetchval("UPDATE api_keys SET revoked_at = now() WHERE key_prefix = $1 AND revoked_at IS NULL"
                           " RETURNING true", prefix) is None:
        raise KeyNotFound(f"no unrevoked key {prefix!r}")


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


@dataclass(frozen=True)
class Principal:
    """Who a request acts as: the tenant, the key (its digest, for limits) and the key's scope."""

    tenant_id: str
    key_hash: str
    key_prefix: str
    scope: str

    def may(self, method: str) -> bool:
        return self.scope == "write" or method in READ_METHODS


LOOKUP = """
SELECT tenant_id, key_prefix, scope, EXTRACT(EPOCH FROM expires_at - now())::float8 AS expires_in_s FROM api_keys
WHERE key_hash = $1 AND revoked_at IS NULL AND (expires_at IS NULL OR expires_at > now())
"""


class Authenticator:
    """Maps an API key to its principal without a query per request: known keys are cached for
    ``cache_seconds`` (the revocation delay; a rotated key's cache entry never outlives its
    expiry), unknown ones for ``miss_cache_seconds``, each in its own bounded table (a flood of bad
    keys cannot push out the good ones), and concurrent lookups of one key share one query. A
    credential that is not shaped like a key never reaches Postgres.

    Timing: the presented key is never compared with a stored one. It is hashed (SHA-256) and the
    digest looked up (Postgres index, dict); how long that takes depends only on the digest, which
    an attacker cannot steer towards a stored one without a SHA-256 preimage, so the lookup leaks
    nothing usable about any key: no ``hmac.compare_digest`` is needed because nothing is compared
    byte by byte with a secret.

    ``last_used_at`` is written in the background, at most once per LAST_USED_RESOLUTION_S per key
    and process, so using a key costs no write per request."""

    def __init__(self, pool: asyncpg.Pool, cache_seconds: float, miss_cache_seconds: float = 5.0) -> None:
        self._pool = pool
        self._cache_seconds = cache_seconds
        self._hits = _ExpiringTable(cache_seconds)
        self._misses = _ExpiringTable(miss_cache_seconds)
        self._lookups: dict[str, asyncio.Task] = {}
        self._touched: dict[str, float] = {}
        self._writes: set[asyncio.Task] = set()

    async def tenant_for(self, api_key: str) -> str | None:
        principal = await self.principal_for(api_key)
        return principal.tenant_id if principal else None

    async def principal_for(self, api_key: str) -> Principal | None:
        if not KEY_SHAPE.fullmatch(api_key):
            return None
        key_hash = digest(api_key)
        now = time.monotonic()
        principal = self._hits.get(key_hash, now)
        if principal is None:
            if self._misses.get(key_hash, now) is not None:
                return None
            lookup = self._lookups.get(key_hash)
            if lookup is None:
                lookup = self._lookups[key_hash] = asyncio.ensure_future(self._lookup(key_hash))
                lookup.add_done_callback(lambda _done: self._lookups.pop(key_hash, None))
            principal = await asyncio.shield(lookup)  # a waiter that goes away does not cancel the others' query
        if principal is not None:
            self._touch(key_hash, now)
        return principal

    async def _lookup(self, key_hash: str) -> Principal | None:
        row = await self._pool.fetchrow(LOOKUP, key_hash)
        metrics.AUTH_LOOKUPS.labels("found" if row else "missing").inc()
        now = time.monotonic()
        if row is None:
            self._misses.put(key_hash, True, now)
            return None
        principal = Principal(row["tenant_id"], key_hash, row["key_prefix"], row["scope"])
        seconds = self._cache_seconds if row["expires_in_s"] is None else min(self._cache_seconds, row["expires_in_s"])
        self._hits.put(key_hash, principal, now, seconds)
        return principal

    def _touch(self, key_hash: str, now: float) -> None:
        if now - self._touched.get(key_hash, -LAST_USED_RESOLUTION_S) < LAST_USED_RESOLUTION_S:
            return
        self._touched.pop(key_hash, None)
        if len(self._touched) >= MAX_CACHED_KEYS:
            del self._touched[next(iter(self._touched))]
        self._touched[key_hash] = now
        write = asyncio.ensure_future(self._write_last_used(key_hash))
        self._writes.add(write)
        write.add_done_callback(self._writes.discard)

    async def _write_last_used(self, key_hash: str) -> None:
        try:
            await self._pool.execute("UPDATE api_keys SET last_used_at = now() WHERE key_hash = $1", key_hash)
        except Exception as error:  # best effort: the next minute tries again
            self._touched.pop(key_hash, None)
            log.warning("api_key_last_used_failed", error=repr(error))

    async def close(self) -> None:
        """Let the last_used_at writes in flight finish (bounded by the pool's command timeout)."""
        if self._writes:
            await asyncio.gather(*self._writes, return_exceptions=True)


class _ExpiringTable:
    """At most MAX_CACHED_KEYS entries, each kept ``seconds``; when full, the oldest entry goes."""

    def __init__(self, seconds: float) -> None:
        self._seconds = seconds
        self._entries: dict[str, tuple[object, float]] = {}

    def get(self, key: str, now: float) -> object | None:
        entry = self._entries.get(key)
        return entry[0] if entry is not None and entry[1] > now else None

    def put(self, key: str, value: object, now: float, seconds: float | None = None) -> None:
        seconds = self._seconds if seconds is None else min(seconds, self._seconds)
        if seconds <= 0:
            return
        self._entries.pop(key, None)
        if len(self._entries) >= MAX_CACHED_KEYS:
            del self._entries[next(iter(self._entries))]
        self._entries[key] = (value, now + seconds)
