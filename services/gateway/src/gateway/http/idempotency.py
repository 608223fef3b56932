"""``Idempotency-Key`` on every authenticated POST, with Stripe's semantics, applied by the generic
view (so every such POST in the endpoint table, present and future, has it).

The first request with a key claims it (a row in ``gateway.idempotency_keys``, per tenant) and runs;
its answer is kept for IDEMPOTENCY_TTL_HOURS unless it is a 5xx (a timeout included) or the request
failed, in which case the key is released so the client can retry. The same key again with the
same method, path, query and body (compared by a SHA-256 fingerprint of their canonical form) gets
the kept answer back with ``Idempotent-Replayed: true`` and nothing is sent to any service; with a
different request it is 422; while the first still runs it is 409. A request refused before it ran
(401, 403, 429, a validation 422) claims nothing.

The key is stored only as a digest, and the kept body is sealed (AES-256-GCM) with a key derived
from the idempotency key itself: a 201 can carry a secret shown once (an integration's
``inbound_secret``), which must not lie in the gateway's schema in clear. Only a client holding the
idempotency key can have it replayed, and a database reader needs the key to open it.
"""
from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import os
import re
from typing import Awaitable, Callable

import asyncpg
from aiohttp import web
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from posint_common.log import get_logger

from gateway.http import problems
from gateway.http.middleware import REQUEST_ID_KEY

log = get_logger(__name__)

HEADER = "Idempotency-Key"
REPLAYED_HEADER = "Idempotent-Replayed"
VALID_KEY = re.compile(r"[\x20-\x7e]{1,255}")  # printable ASCII, as Stripe takes
DESCRIPTION = (
    "Makes the POST safe to retry: 1-255 printable ASCII characters, unique per operation (a UUID is best). "
    "Within 24 hours the same key with the same request returns the first response again, with "
    "'Idempotent-Replayed: true', without doing anything twice; with a different request it is 422; while the "
    "first request still runs it is 409. A 5xx is not kept: retry it with the same key."
)
# Per-response or per-hop headers: never replayed (the replay gets its own request id and limits).
NOT_KEPT = frozenset({"x-request-id", "content-length", "date", "server", "transfer-encoding", "connection",
                      "keep-alive", "retry-after", "ratelimit-limit", "ratelimit-remaining", "ratelimit-reset",
                      "ratelimit-policy"})
NONCE_BYTES = 12

CLAIM = """
INSERT INTO idempotency_keys AS k (tenant_id, key_digest, fingerprint, locked_until, expires_at)
VALUES ($1, $2, $3, now() + $4::float8 * interval '1 second', now() + $5::float8 * interval '1 second')
ON CONFLICT (tenant_id, key_digest) DO UPDATE
    SET fingerprint = EXCLUDED.fingerprint, locked_until = EXCLUDED.locked_until, expires_at = EXCLUDED.expires_at,
        status = NULL, headers = NULL, body = NULL, created_at = now()
    WHERE k.expires_at <= now() OR (k.status IS NULL AND k.locked_until <= now())
RETURNING true
"""
EXISTING = "SELECT fingerprint, status, headers, body FROM idempotency_keys WHERE tenant_id = $1 AND key_digest = $2"
COMPLETE = """
UPDATE idempotency_keys SET status = $4, headers = $5::jsonb, body = $6
WHERE tenant_id = $1 AND key_digest = $2 AND fingerprint = $3 AND status IS NULL
"""
RELEASE = "DELETE FROM idempotency_keys WHERE tenant_id = $1 AND key_digest = $2 AND fingerprint = $3 AND status IS NULL"
PURGE_BATCH = """
WITH old AS (SELECT tenant_id, key_digest FROM idempotency_keys WHERE expires_at <= now() ORDER BY expires_at LIMIT $1)
DELETE FROM idempotency_keys k USING old WHERE k.tenant_id = old.tenant_id AND k.key_digest = old.key_digest
"""


def applies(method: str, authenticated: bool) -> bool:
    """Every POST that a tenant's key authenticates; a public endpoint has no tenant to keep answers for."""
    return method == "POST" and authenticated


def fingerprint(request: web.Request, raw_body: bytes) -> str:
    """The request's identity: method, path, query and the body as canonical JSON (key order and
    whitespace do not matter); a body that is not JSON is taken byte for byte."""
    try:
        body = json.dumps(json.loads(raw_body), sort_keys=True, separators=(",", ":"), ensure_ascii=False) if raw_body else ""
    except (ValueError, UnicodeDecodeError):
        body = raw_body.hex()
    query = sorted(request.query.items())
    canonical = json.dumps([request.method, request.path, query, body], separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode()).hexdigest()


class _Sealer:
    """Seals a kept body under a key derived from the idempotency key and the tenant."""

    def __init__(self, tenant_id: str, key: str) -> None:
        self._aead = AESGCM(hmac.new(key.encode(), b"posint.idempotency\x00" + tenant_id.encode(), hashlib.sha256).digest())
        self._aad = tenant_id.encode()

    def seal(self, body: bytes) -> bytes:
        nonce = os.urandom(NONCE_BYTES)
        return nonce + self._aead.encrypt(nonce, body, self._aad)

    def open(self, sealed: bytes) -> bytes:
        return self._aead.decrypt(sealed[:NONCE_BYTES], sealed[NONCE_BYTES:], self._aad)


class IdempotencyStore:
    """The kept answers in the gateway's schema; ``lock_s`` bounds how long a request that never
    finished (its gateway crashed) holds its key, ``ttl_s`` how long an answer is kept."""

    def __init__(self, pool: asyncpg.Pool, ttl_s: float, lock_s: float) -> None:
        self.pool = pool
        self.ttl_s = ttl_s
        self.lock_s = lock_s

    async def run(self, request: web.Request, tenant_id: str, handle: Callable[[], Awaitable[web.StreamResponse]]):
        key = request.headers.get(HEADER)
        if key is None:
            return await handle()
        if len(request.headers.getall(HEADER)) > 1 or not VALID_KEY.fullmatch(key):
            raise problems.ApiError(problems.validation_problem(
                [problems.FieldError(field=HEADER, message="Give one key of 1-255 printable ASCII characters.")], "header"))
        digest = hashlib.sha256(key.encode()).hexdigest()
        mine = fingerprint(request, await request.read())
        sealer = _Sealer(tenant_id, key)
        for _ in range(3):  # a key released between our claim and our look is claimed again
            if await self.pool.fetchval(CLAIM, tenant_id, digest, mine, self.lock_s, self.ttl_s):
                return await self._first(request, tenant_id, digest, mine, sealer, handle)
            row = await self.pool.fetchrow(EXISTING, tenant_id, digest)
            if row is None:
                continue
            if not hmac.compare_digest(row["fingerprint"], mine):
                raise problems.ApiError(problems.IDEMPOTENCY_KEY_REUSED)
            if row["status"] is None:
                raise problems.ApiError(problems.IDEMPOTENCY_KEY_IN_USE, {"Retry-After": "1"})
            headers = {**json.loads(row["headers"]), REPLAYED_HEADER: "true"}
            body = sealer.open(row["body"]) if row["body"] is not None else None
            return web.Response(status=row["status"], body=body, headers=headers)
        raise problems.ApiError(problems.IDEMPOTENCY_KEY_IN_USE, {"Retry-After": "1"})

    async def _first(self, request, tenant_id, digest, mine, sealer, handle) -> web.StreamResponse:
        kept = False
        try:
            try:
                response = await handle()
            except problems.ApiError as error:  # the handler's own answer, e.g. 409 or 503: kept or not by its status
                response = problems.respond(error.body, request[REQUEST_ID_KEY], error.headers)
            if response.status < 500 and isinstance(response, web.Response):
                headers = {name: value for name, value in response.headers.items() if name.lower() not in NOT_KEPT}
                body = sealer.seal(response.body) if response.body is not None else None
                await asyncio.shield(self.pool.execute(COMPLETE, tenant_id, digest, mine, response.status, json.dumps(headers), body))
                kept = True
            return response
        finally:
            if not kept:  # a 5xx, a timeout or a failure: the client may retry with the same key
                await asyncio.shield(self._release(tenant_id, digest, mine))

    async def _release(self, tenant_id: str, digest: str, mine: str) -> None:
        try:
            await self.pool.execute(RELEASE, tenant_id, digest, mine)
        except Exception as error:  # the lock runs out on its own (lock_s)
            log.warning("idempotency_release_failed", error=repr(error))

    async def purge(self, batch_size: int = 1000) -> int:
        """Delete expired keys, oldest first, in short transactions."""
        total = 0
        while True:
            status = await self.pool.execute(PURGE_BATCH, batch_size)
            deleted = int(status.split()[-1])
            total += deleted
            if deleted < batch_size:
                break
        if total:
            log.info("idempotency_keys_purged", rows=total)
        return total

    async def purge_forever(self, interval_s: float) -> None:
        """The supervised purger: a failed round (Postgres away) is retried at the next."""
        while True:
            try:
                await self.purge()
            except asyncio.CancelledError:
                raise
            except Exception as error:
                log.warning("idempotency_purge_failed", error=repr(error))
            await asyncio.sleep(interval_s)


STORE_KEY = web.AppKey("idempotency", IdempotencyStore)
