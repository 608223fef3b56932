"""``make order``: place a test order on the sandbox DoorDash of the running stack, which pushes it,
signed the way DoorDash does (the integration's inbound secret as its webhook token), to the demo
integration's inbound URL; then show the order as ``GET /api/v1/external-orders`` lists it.

Needs a stack started with ``make run`` from POSINT_RUN_DIR (its stack.env, the demo API key and
demo-integrations.json with the inbound secret, all 0600)."""
from __future__ import annotations

import asyncio
import json
import os
import sys
import time
from pathlib import Path

import aiohttp

from posint_devstack.launcher import ENV_FILE, stack_running
from posint_devstack.seed import DEMO_FILE

PROVIDER = "doordash"
VISIBLE_TIMEOUT_S = 15.0


def _fail(message: str) -> int:
    print(message, file=sys.stderr)
    return 2


async def place_order(run_dir: Path, out=print, visible_timeout_s: float = VISIBLE_TIMEOUT_S) -> int:
    if not stack_running(run_dir):
        return _fail(f"the stack in {run_dir} is not running: start it with 'make run' first")
    env = dict(line.split("=", 1) for line in (run_dir / ENV_FILE).read_text().splitlines() if "=" in line)
    try:
        demo = json.loads((run_dir / DEMO_FILE).read_text())["integrations"][PROVIDER]
    except (FileNotFoundError, KeyError, ValueError):
        return _fail(f"no demo {PROVIDER} integration in {run_dir / DEMO_FILE}: restart 'make run'")
    sandbox_url, gateway_url = env.get("SANDBOX_PLATFORMS_URL"), env["GATEWAY_URL"]
    if not sandbox_url:
        return _fail("this stack runs no sandbox platforms (SANDBOX_PLATFORMS_URL missing in stack.env)")
    inbound_url = gateway_url + demo["inbound_path"]
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=20), trust_env=False) as session:
        async with session.post(f"{sandbox_url}/{PROVIDER}/_control/push",
                                json={"url": inbound_url, "secret": demo["inbound_secret"]}) as response:
            result = await response.json(content_type=None)
        if response.status != 200:
            return _fail(f"the sandbox could not push the order: {result.get('detail', result)}")
        out(f"placed order {result['order_id']} on the sandbox {PROVIDER} ({sandbox_url}/{PROVIDER})")
        out(f"{PROVIDER} pushed it, signed, to {inbound_url}: HTTP {result['status']} {result['response']}")
        if result["status"] not in (200, 202):
            return 1
        key_file = run_dir / "api-key"
        if not key_file.exists():
            return 0
        order = await _visible(session, gateway_url, key_file.read_text().strip(), demo["id"], result["order_id"],
                               visible_timeout_s)
        if order is None:
            out(f"not listed by GET {gateway_url}/api/v1/external-orders within {visible_timeout_s:g} s "
                "(is the orders service up? see .run/logs)")
            return 1
        out(f"listed by GET {gateway_url}/api/v1/external-orders: id {order['id']}, status {order['status']}, "
            f"total {order['total']} {order['currency']}")
    return 0


async def _visible(session: aiohttp.ClientSession, gateway_url: str, api_key: str, integration_id: int,
                   external_id: str, timeout_s: float) -> dict | None:
    """The order as the API lists it, polled until it shows (None after ``timeout_s``)."""
    deadline = time.monotonic() + timeout_s
    headers = {"Authorization": f"Bearer {api_key}"}
    while time.monotonic() < deadline:
        try:
            async with session.get(f"{gateway_url}/api/v1/external-orders", headers=headers,
                                   params={"integration_id": str(integration_id), "limit": "50"}) as response:
                if response.status == 200:
                    for order in (await response.json()).get("data", []):
                        if order.get("external_id") == external_id:
                            return order
        except (aiohttp.ClientError, asyncio.TimeoutError, ValueError):
            pass
        await asyncio.sleep(0.3)
    return None


def main() -> int:
    run_dir = Path(os.environ.get("POSINT_RUN_DIR") or ".run").resolve()
    return asyncio.run(place_order(run_dir))


if __name__ == "__main__":
    raise SystemExit(main())
