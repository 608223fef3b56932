"""The baseline: the same endpoint served straight from Postgres, no broker, no services.

It does what the gateway + integrations path does minus Kafka: SHA-256 of the bearer key looked up
in ``gateway.api_keys`` (cached, as the gateway's Authenticator does), a request id header, then
the same query the integrations service runs, rows shaped like ``IntegrationView`` (None dropped,
timestamps ISO) under ``{"data": [...]}``. One process, default asyncio loop, pool of 10, like the
services. Run as ``python -m bench.baseline DATABASE_URL PORT``; it prints ``ready`` when listening.
"""
from __future__ import annotations

import asyncio
import hashlib
import json
import sys
import uuid
from typing import Any, Awaitable, Callable

import asyncpg
import uvloop
from aiohttp import web

QUERY = ("SELECT id, name, integration_type, provider, is_active, last_sync_at FROM integrations.integrations"
         " WHERE tenant_id = $1 ORDER BY id LIMIT 100")


def body(rows: list[asyncpg.Record]) -> str:
    """The query's rows as the API shows them (``bench.minimal``'s service replies with the same)."""
    data = [{k: (v.isoformat() if hasattr(v, "isoformat") else v) for k, v in row.items() if v is not None}
            for row in rows]
    return json.dumps({"data": data})


def authenticator(pool: asyncpg.Pool) -> Callable[[web.Request], Awaitable[Any]]:
    """The request's tenant id from its bearer key (None: no such key), cached as the gateway's
    Authenticator caches it (``bench.minimal``'s HTTP process checks keys with it too)."""
    tenants: dict[str, Any] = {}

    async def tenant_of(request: web.Request) -> Any:
        scheme, _, key = request.headers.get("Authorization", "").partition(" ")
        if scheme.lower() != "bearer":
            return None
        key_hash = hashlib.sha256(key.strip().encode()).hexdigest()
        if key_hash not in tenants:
            tenants[key_hash] = await pool.fetchval(
                "SELECT tenant_id FROM gateway.api_keys WHERE key_hash = $1 AND revoked_at IS NULL", key_hash)
        return tenants[key_hash]

    return tenant_of


def build_app(pool: asyncpg.Pool, demo_tenant: str) -> web.Application:
    tenant_of = authenticator(pool)

    async def list_integrations(request: web.Request) -> web.Response:
        if await tenant_of(request) != demo_tenant:
            return web.json_response({"title": "Unauthorized", "status": 401}, status=401)
        rows = await pool.fetch(QUERY, demo_tenant)
        return web.Response(text=body(rows), content_type="application/json",
                            headers={"X-Request-Id": uuid.uuid4().hex})

    app = web.Application()
    app.router.add_get("/api/v1/integrations", list_integrations)
    return app


async def serve(database_url: str, port: int) -> None:
    pool = await asyncpg.create_pool(database_url, min_size=1, max_size=10)
    demo_tenant = await pool.fetchval("SELECT id FROM gateway.tenants WHERE name = 'demo'")
    runner = web.AppRunner(build_app(pool, demo_tenant), access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    print("ready", flush=True)
    try:
        await asyncio.Event().wait()
    finally:
        await runner.cleanup()
        await pool.close()


if __name__ == "__main__":
    try:
        with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:  # as the services run
            runner.run(serve(sys.argv[1], int(sys.argv[2])))
    except KeyboardInterrupt:
        pass
