"""Per-service operational HTTP: /healthz (alive), /readyz (dependencies reachable), /metrics."""
from __future__ import annotations

import asyncio
from typing import Awaitable, Callable

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

Check = Callable[[], Awaitable[bool]]
CHECK_TIMEOUT_S = 2.0

CHECKS_KEY = web.AppKey("checks", dict)


async def healthz(_request: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


async def readyz(request: web.Request) -> web.Response:
    results = {}
    for name, check in request.app[CHECKS_KEY].items():
        try:
            results[name] = bool(await asyncio.wait_for(check(), CHECK_TIMEOUT_S))
        except Exception:
            results[name] = False
    ready = all(results.values())
    return web.json_response({"status": "ready" if ready else "not ready", "checks": results}, status=200 if ready else 503)


async def metrics_view(_request: web.Request) -> web.Response:
    return web.Response(body=generate_latest(), headers={"Content-Type": CONTENT_TYPE_LATEST})


def add_health_routes(app: web.Application, checks: dict[str, Check]) -> None:
    app[CHECKS_KEY] = checks
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    app.router.add_get("/metrics", metrics_view)
