"""Wires the gateway: its schema (tenants, keys, outbox), the reply router and the HTTP server."""
from pathlib import Path

from aiohttp import web

from posint_common.runtime import ServiceRuntime, bound_port

from gateway import SCHEMA
from gateway.config import GatewaySettings
from gateway.http.app import create_app
from gateway.http.edge import EdgeRunner
from gateway.requester import Requester
from gateway.tenants import Authenticator

MIGRATIONS = Path(__file__).resolve().parents[2] / "migrations"
NAME = "gateway"


async def bootstrap(settings: GatewaySettings) -> ServiceRuntime:
    runtime = ServiceRuntime(name=NAME, schema=SCHEMA, settings=settings, migrations=MIGRATIONS)
    await runtime.start_core()
    requester = Requester(
        settings, runtime.producer, reply_timeout_s=settings.reply_timeout_ms / 1000, max_pending=settings.max_pending_replies
    )
    authenticator = Authenticator(runtime.pool, settings.auth_cache_seconds, settings.auth_miss_cache_seconds)
    runner = EdgeRunner(create_app(requester, authenticator, settings.max_body_bytes))

    async def start_http() -> None:
        await requester.start()
        for task in requester.tasks:
            runtime.supervise(task)
        await runner.setup()
        site = web.TCPSite(runner, settings.gateway_host, settings.gateway_port)
        await site.start()
        runtime.ports["http"] = bound_port(site)

    async def stop_http() -> None:
        await runner.cleanup()
        await requester.stop()

    runtime.extra_start.append(start_http)
    runtime.extra_stop.append(stop_http)
    runtime.extra_ready.append(lambda: requester.ready)
    return runtime
