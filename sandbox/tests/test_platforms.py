"""The fake platforms themselves: bound to 127.0.0.1, steered through the control API over HTTP,
listing since a watermark with repeats and disorder on demand, and pushing orders that posint's
own inbound adapters accept (signature and payload), so the fakes cannot drift from the adapters."""
from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
from datetime import datetime, timedelta, timezone

import aiohttp
import pytest
from aiohttp import web

from integrations.adapters.providers import ADAPTERS, Keys
from posint_common.testing import eventually
from sandbox.platforms import samples
from sandbox.platforms.demo import DEMO_CREDENTIALS
from sandbox.platforms.server import PROVIDERS, Sandbox
from sandbox.platforms.settings import SandboxSettings

INBOUND_SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSwMTIzNDU2Nzg5MDE="


@pytest.fixture
async def sandbox():
    async with Sandbox() as running:
        yield running


@pytest.fixture
async def http():
    async with aiohttp.ClientSession() as session:
        yield session


@pytest.fixture
async def receiver():
    """An inbound URL on 127.0.0.1 that keeps what it receives (the bytes exactly)."""
    received: list[tuple[str, bytes, dict[str, str]]] = []

    async def inbound(request: web.Request) -> web.Response:
        received.append((request.path, await request.read(), {k.lower(): v for k, v in request.headers.items()}))
        return web.json_response({"data": {"status": "received"}}, status=202)

    app = web.Application()
    app.router.add_post("/api/v1/integrations/{id}/inbound", inbound)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]
    yield f"http://127.0.0.1:{port}/api/v1/integrations/7/inbound", received
    await runner.cleanup()


async def test_the_fakes_listen_on_loopback_only(sandbox):
    host, _port = sandbox.runner.addresses[0][:2]
    assert host == "127.0.0.1"


@pytest.mark.parametrize("provider", ["doordash", "ubereats", "grubhub", "custom"])
async def test_a_pushed_order_verifies_and_parses_with_the_inbound_adapter(sandbox, receiver, provider):
    url, received = receiver
    result = await sandbox[provider].push(url, INBOUND_SECRET)
    assert result["status"] == 202 and result["provider"] == provider
    path, body, headers = received[0]
    keys = Keys(inbound_secret=INBOUND_SECRET, credentials=DEMO_CREDENTIALS[provider])
    adapter = ADAPTERS[provider]
    adapter.verify(body, headers, keys, 7)  # raises SignatureError when the fake signs differently
    parsed = adapter.parse(json.loads(body), headers)
    assert parsed.order.external_id == result["order_id"]
    assert sandbox[provider].order_id(sandbox[provider].orders[-1].order) == result["order_id"]  # listed too

    from integrations.adapters.providers.base import SignatureError
    wrong = Keys(inbound_secret="whsec_" + "A" * 44, credentials={key: "other" for key in DEMO_CREDENTIALS[provider]})
    with pytest.raises(SignatureError):  # and the check is real: other keys fail it
        adapter.verify(body, headers, wrong, 7)


async def test_a_push_goes_to_loopback_only(sandbox):
    with pytest.raises(ValueError, match="loopback"):
        await sandbox["custom"].push("http://192.0.2.1/api/v1/integrations/1/inbound", INBOUND_SECRET)
    assert sandbox["custom"].orders == []


async def test_the_control_api_steers_faults_orders_and_list_mode(sandbox, http):
    base = sandbox.base_url("doordash")
    async with http.post(f"{base}/_control/orders", json={"count": 3}) as response:
        assert response.status == 201 and len((await response.json())["orders"]) == 3
    async with http.post(f"{base}/_control/faults", json={"kind": "429", "retry_after": 7, "path": "/orders"}) as response:
        assert response.status == 201
    async with http.post(f"{base}/_control/faults", json={"kind": "meteor"}) as response:
        assert response.status == 400
    listing = f"{base}/marketplace/api/v1/stores/s/orders"
    async with http.get(listing) as response:
        assert response.status == 429 and response.headers["Retry-After"] == "7"
    async with http.get(listing) as response:  # the fault was for one request; then the JWT is checked
        assert response.status == 401
    async with http.post(f"{base}/_control/list-mode", json={"duplicate": True, "page_size": 2}) as response:
        assert await response.json() == {"duplicate": True, "out_of_order": False, "page_size": 2}
    async with http.get(f"{base}/_control/state") as response:
        state = await response.json()
    assert len(state["orders"]) == 3 and state["injected_faults"] == [["429", "/doordash/marketplace/api/v1/stores/s/orders"]]
    async with http.post(f"{base}/_control/reset") as response:
        assert response.status == 200
    assert sandbox["doordash"].orders == [] and not sandbox["doordash"].duplicate


async def test_the_control_api_pushes_signed(sandbox, http, receiver):
    url, received = receiver
    async with http.post(f"{sandbox.base_url('custom')}/_control/push", json={"url": url, "secret": INBOUND_SECRET}) as response:
        result = await response.json()
    assert response.status == 200 and result["status"] == 202
    ADAPTERS["custom"].verify(received[0][1], received[0][2], Keys(inbound_secret=INBOUND_SECRET), 7)
    async with http.post(f"{sandbox.base_url('custom')}/_control/push", json={"url": "http://10.0.0.1/x"}) as response:
        assert response.status == 400


async def test_the_list_honours_the_watermark_pages_repeats_and_disorder(sandbox, http):
    fake = sandbox["custom"]
    start = datetime(2026, 1, 4, 18, 0, tzinfo=timezone.utc)
    for n in range(5):
        fake.add_order(samples.sample_order(seed=n, order_id=f"C-{n}"), updated_at=start + timedelta(minutes=n))
    fake.page_size = 2
    fake.duplicate = fake.out_of_order = True
    seen, cursor = [], None
    headers = {"Authorization": f"Bearer {DEMO_CREDENTIALS['custom']['api_key']}"}
    while True:
        query = {"updated_since": samples.iso(start + timedelta(minutes=2))} | ({"cursor": cursor} if cursor else {})
        async with http.get(f"{sandbox.base_url('custom')}/orders", params=query, headers=headers) as response:
            page = await response.json()
        seen += [element["order"]["external_id"] for element in page["orders"]]
        cursor = page["next_cursor"]
        if not cursor:
            break
    assert seen == ["C-4", "C-4", "C-3", "C-3", "C-2", "C-2"]


async def test_ledger_writes_honour_the_idempotency_key(sandbox, http):
    fake = sandbox["xero"]
    token = fake.issue_token()["access_token"]
    headers = {"Authorization": f"Bearer {token}", "Xero-tenant-id": "t", "Idempotency-Key": "k-1"}
    body = {"Invoices": [{"Type": "ACCREC", "LineItems": []}]}
    answers = []
    for _ in range(2):
        async with http.put(f"{sandbox.base_url('xero')}/api.xro/2.0/Invoices", json=body, headers=headers) as response:
            answers.append(await response.json())
    assert answers[0] == answers[1] and len(fake.ledger) == 1
    fake.expire_tokens()
    async with http.put(f"{sandbox.base_url('xero')}/api.xro/2.0/Invoices", json=body, headers=headers) as response:
        assert response.status == 401


def test_settings_come_from_the_environment():
    assert SandboxSettings.from_env({}).port == 8090
    settings = SandboxSettings.from_env({"SANDBOX_PLATFORMS_PORT": "0", "HEALTH_PORT": "9999", "SANDBOX_SAMPLE_ORDERS": "0"})
    assert (settings.port, settings.health_port, settings.sample_orders) == (0, 9999, 0)
    with pytest.raises(ValueError, match="SANDBOX_PLATFORMS_PORT"):
        SandboxSettings.from_env({"SANDBOX_PLATFORMS_PORT": "http"})


async def test_python_m_sandbox_platforms_serves_every_fake_until_stopped(http):
    process = subprocess.Popen([sys.executable, "-m", "sandbox.platforms"], stdout=subprocess.PIPE, text=True,
                               env={**os.environ, "SANDBOX_PLATFORMS_PORT": "0", "SANDBOX_SAMPLE_ORDERS": "2"})
    try:
        line = await asyncio.wait_for(asyncio.to_thread(process.stdout.readline), 30)
        port = json.loads(line)["ports"]["http"]
        async with http.get(f"http://127.0.0.1:{port}/readyz") as response:
            assert (await response.json())["platforms"] == sorted(PROVIDERS)
        async with http.get(f"http://127.0.0.1:{port}/doordash/_control/state") as response:
            assert len((await response.json())["orders"]) == 2  # sample orders for the demo
        process.send_signal(signal.SIGTERM)
        await eventually(lambda: process.poll() is not None, 10, "the sandbox to stop")
        assert process.returncode == 0
    finally:
        if process.poll() is None:
            process.kill()
        process.stdout.close()
