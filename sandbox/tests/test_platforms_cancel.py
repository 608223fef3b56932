"""The fake delivery platforms cancel an order on request (control API): it is listed again as
cancelled, in the shape posint's API clients read, and the cancellation push is signed and parsed
by posint's own inbound adapters, so the fakes cannot drift from the adapters."""
from __future__ import annotations

import json

import aiohttp
import pytest

from integrations.adapters.providers import ADAPTERS, Cancellation, Keys
from integrations.adapters.providers.api import CLIENTS
from integrations.adapters.providers.client import ClientOptions
from posint_common.egress import EgressPolicy, egress_session, parse_networks
from sandbox.platforms.demo import DEMO_CREDENTIALS, demo_config
from sandbox.platforms.server import Sandbox

from .test_platforms import INBOUND_SECRET, receiver  # noqa: F401 (fixture)

DELIVERY = ("custom", "doordash", "ubereats", "grubhub")


@pytest.fixture
async def sandbox():
    async with Sandbox() as running:
        yield running


@pytest.fixture
async def http():
    async with aiohttp.ClientSession() as session:
        yield session


@pytest.mark.parametrize("provider", DELIVERY)
async def test_a_cancelled_order_is_pushed_signed_and_parsed_as_a_cancellation(sandbox, http, receiver, provider):
    url, received = receiver
    base = sandbox.base_url(provider)
    order_id = sandbox[provider].order_id(sandbox[provider].add_order())
    async with http.post(f"{base}/_control/orders/{order_id}/cancel",
                         json={"reason": "no driver", "url": url, "secret": INBOUND_SECRET}) as response:
        result = await response.json()
    assert response.status == 200 and result["status"] == 202, result
    _, body, headers = received[-1]
    adapter = ADAPTERS[provider]
    adapter.verify(body, headers, Keys(inbound_secret=INBOUND_SECRET, credentials=DEMO_CREDENTIALS[provider]), 7)
    parsed = adapter.parse(json.loads(body), headers)
    assert isinstance(parsed, Cancellation) and (parsed.external_id, parsed.reason) == (order_id, "no driver")


@pytest.mark.parametrize("provider", DELIVERY)
async def test_a_cancelled_order_is_listed_as_cancelled(sandbox, http, provider):
    fake = sandbox[provider]
    standing, cancelled = (fake.order_id(fake.add_order()) for _ in range(2))
    async with http.post(f"{sandbox.base_url(provider)}/_control/orders/{cancelled}/cancel", json={}) as response:
        assert response.status == 200, await response.text()
    async with egress_session(EgressPolicy(parse_networks("127.0.0.0/8"), allow_only=True)) as session:
        client = CLIENTS[provider](demo_config(provider, sandbox.url), DEMO_CREDENTIALS[provider], session,
                                   ClientOptions(), None, None)
        result = await client.fetch_orders(None)
        await client.close()
    states = {fetched.normalized.external_id: (fetched.cancelled, fetched.cancel_reason) for fetched in result.orders}
    assert states == {standing: (False, None), cancelled: (True, None)}
    assert result.watermark == max(listed.updated_at for listed in fake.orders)  # the cancellation is a change


async def test_the_cancel_control_refuses_what_it_cannot_do(sandbox, http):
    base = sandbox.base_url("custom")
    order_id = sandbox["custom"].order_id(sandbox["custom"].add_order())
    async with http.post(f"{base}/_control/orders/nope/cancel", json={}) as response:
        assert response.status == 404
    async with http.post(f"{base}/_control/orders/{order_id}/cancel", json={"reason": 5}) as response:
        assert response.status == 400
    async with http.post(f"{base}/_control/orders/{order_id}/cancel", json={"url": "http://10.0.0.1/x"}) as response:
        assert response.status == 400
