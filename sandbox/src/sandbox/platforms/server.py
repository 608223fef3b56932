"""All fake platforms in one aiohttp application on 127.0.0.1: each under its own path
(``/doordash``, ``/ubereats``, ``/grubhub``, ``/custom``, ``/quickbooks``, ``/xero``), its control
API under ``/<provider>/_control/``, and ``/readyz``. Tests build it in-process (``Sandbox``) and
reach each platform's state directly; ``python -m sandbox.platforms`` serves it."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from sandbox.platforms.accounting import QuickBooks, Xero
from sandbox.platforms.base import Platform
from sandbox.platforms.delivery import Custom, DoorDash, Grubhub, UberEats

HOST = "127.0.0.1"  # never anything else: these fakes stand in for the outside world on this machine only
PROVIDERS = ("doordash", "ubereats", "grubhub", "custom", "quickbooks", "xero")


def platforms(**options: Any) -> dict[str, Platform]:
    """One fake of each provider, with the demo credentials; ``options`` go to each (page_size, token_ttl_s)."""
    return {platform.name: platform for platform in (
        DoorDash(**options), UberEats(**options), Grubhub(**options), Custom(**options),
        QuickBooks(**options), Xero(**options))}


def application(fakes: dict[str, Platform]) -> web.Application:
    app = web.Application()

    async def ready(request: web.Request) -> web.Response:
        return web.json_response({"status": "ready", "platforms": sorted(fakes)})

    app.router.add_get("/readyz", ready)
    app.router.add_get("/healthz", ready)
    for name, fake in fakes.items():
        app.add_subapp(f"/{name}", fake.app())
    return app


@dataclass
class Sandbox:
    """The fakes served on 127.0.0.1:``port`` (0: a free one) until ``stop``."""

    port: int = 0
    health_port: int | None = None
    options: dict[str, Any] = field(default_factory=dict)
    fakes: dict[str, Platform] = field(default_factory=dict)
    runner: web.AppRunner | None = None

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}"

    def base_url(self, provider: str) -> str:
        return f"{self.url}/{provider}"

    def __getitem__(self, provider: str) -> Platform:
        return self.fakes[provider]

    async def start(self) -> "Sandbox":
        self.fakes = self.fakes or platforms(**self.options)
        self.runner = web.AppRunner(application(self.fakes), access_log=None, shutdown_timeout=1.0)
        await self.runner.setup()
        site = web.TCPSite(self.runner, HOST, self.port)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        if self.health_port is not None:
            health = web.TCPSite(self.runner, HOST, self.health_port)
            await health.start()
            self.health_port = health._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        return self

    async def stop(self) -> None:
        if self.runner is not None:
            await self.runner.cleanup()
            self.runner = None

    async def __aenter__(self) -> "Sandbox":
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()
