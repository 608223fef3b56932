"""Wires the gateway: its schema (tenants, keys, idempotency keys, outbox), the reply router, the
idempotency-key purger and the HTTP server."""
import asyncio
from pathlib import Path

from aiohttp import web

from posint_common.contracts.topics import GATEWAY_REPLIES
from posint_common.log import get_logger
from posint_common.requests import Requester
from posint_common.runtime import ServiceRuntime, bound_port

from gateway import SCHEMA
from gateway.config import GatewaySettings
from gateway.http.app import create_app
from gateway.http.edge import EdgeRunner
from gateway.http.idempotency import IdempotencyStore
from gateway.http.limits import KeyLimiter
from gateway.tenants import Authenticator

MIGRATIONS = Path(__file__).resolve().parents[2] / "migrations"
NAME = "gateway"
log = get_logger(__name__)


async def bootstrap(settings: GatewaySettings) -> ServiceRuntime:
    runtime = ServiceRuntime(name=NAME, schema=SCHEMA, settings=settings, migrations=MIGRATIONS, carries_secrets=True)
    await runtime.start_core()
    requester = Requester(
        settings, runtime.producer, source=runtime.source, reply_topic=GATEWAY_REPLIES, client_id=GATEWAY_REPLIES,
        reply_timeout_s=settings.reply_timeout_ms / 1000, max_pending=settings.max_pending_replies,
    )
    authenticator = Authenticator(runtime.pool, settings.auth_cache_seconds, settings.auth_miss_cache_seconds)
    # A claimed Idempotency-Key is held at most as long as a request can take, so a gateway that died
    # mid-request does not block the key for a day (send + reply timeouts + the 503/504 check + margin).
    lock_s = (settings.kafka_request_timeout_ms + settings.reply_timeout_ms) / 1000 + 15
    idempotency = IdempotencyStore(runtime.pool, ttl_s=settings.idempotency_ttl_hours * 3600, lock_s=lock_s)
    limiter = KeyLimiter(settings.rate_limit_per_second, settings.rate_limit_burst, settings.max_in_flight_per_key)
    if not settings.request_controls:  # the bench's "foundation" gateway: what idempotency, limits and scopes cost
        log.warning("request_controls_off", detail="no idempotency keys, rate limits or scopes: bench only")
        idempotency = limiter = None
    runner = EdgeRunner(create_app(requester, authenticator, settings.max_body_bytes, idempotency, limiter,
                                   settings.request_controls))
    purger: asyncio.Task | None = None

    async def start_http() -> None:
        nonlocal purger
        await requester.start()
        for task in requester.tasks:
            runtime.supervise(task)
        if idempotency is not None:
            purger = asyncio.create_task(idempotency.purge_forever(settings.idempotency_purge_interval_s), name="idempotency-purger")
            runtime.tasks.append(purger)  # cancelled at stop
            runtime.supervise(purger)
        await runner.setup()
        site = web.TCPSite(runner, settings.gateway_host, settings.gateway_port)
        await site.start()
        runtime.ports["http"] = bound_port(site)

    async def stop_http() -> None:
        await runner.cleanup()
        await requester.stop()
        await authenticator.close()

    runtime.extra_start.append(start_http)
    runtime.extra_stop.append(stop_http)
    runtime.extra_ready.append(lambda: requester.ready)
    return runtime
