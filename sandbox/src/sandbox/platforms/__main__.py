"""``python -m sandbox.platforms``: serve every fake platform on 127.0.0.1 until stopped."""
from __future__ import annotations

import asyncio
import json
import os
import signal
import sys

from sandbox.platforms.server import PROVIDERS, Sandbox
from sandbox.platforms.settings import SandboxSettings


async def serve(settings: SandboxSettings) -> None:
    sandbox = Sandbox(port=settings.port, health_port=settings.health_port,
                      options={"token_ttl_s": settings.token_ttl_s})
    await sandbox.start()
    for provider in ("doordash", "ubereats", "grubhub", "custom"):
        for _ in range(settings.sample_orders):
            sandbox[provider].add_order()
    # one JSON line the launcher reads (the port picked when SANDBOX_PLATFORMS_PORT=0), then a readable list
    print(json.dumps({"event": "service_started", "service": "sandbox.platforms",
                      "ports": {"http": sandbox.port}}), flush=True)
    for provider in PROVIDERS:
        print(f"  {provider:<10} {sandbox.base_url(provider)}   control: {sandbox.base_url(provider)}/_control/state",
              flush=True)
    stop = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        asyncio.get_running_loop().add_signal_handler(sig, stop.set)
    try:
        await stop.wait()
    finally:
        await sandbox.stop()


def main() -> int:
    try:
        settings = SandboxSettings.from_env(os.environ)
    except ValueError as error:
        print(error, file=sys.stderr)
        return 2
    asyncio.run(serve(settings))
    return 0


if __name__ == "__main__":
    sys.exit(main())
