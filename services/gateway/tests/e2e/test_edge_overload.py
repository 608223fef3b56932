"""The table of requests waiting for a reply is bounded: past MAX_PENDING_REPLIES the gateway answers
503 with Retry-After at once instead of holding more. Its own broker, with nothing answering, keeps
the first request waiting."""
import asyncio
import time

import aiohttp
import pytest

from gateway.bootstrap import bootstrap as gateway_bootstrap
from gateway.config import GatewaySettings
from gateway.tenants import create_tenant
from posint_common.contracts import topics
from posint_common.testing import read_topic, started, unique


@pytest.fixture
async def one_slot(private_broker):
    bootstrap_servers = private_broker.bootstrap_servers
    settings = GatewaySettings(
        database_url=private_broker.database_url, kafka_bootstrap_servers=bootstrap_servers, gateway_port=0, health_port=0,
        reply_timeout_ms=3_000, max_pending_replies=1,
    )
    runtime = await started(gateway_bootstrap(settings))
    _tenant_id, key = await create_tenant(runtime.pool, unique("one-slot"))
    base = f"http://127.0.0.1:{runtime.ports['http']}"
    async with aiohttp.ClientSession(base_url=base, timeout=aiohttp.ClientTimeout(total=20)) as session:
        yield session, {"Authorization": f"Bearer {key}"}, bootstrap_servers
    await asyncio.wait_for(runtime.stop(), 30)


async def test_past_the_pending_limit_the_answer_is_an_immediate_503(one_slot):
    session, headers, bootstrap_servers = one_slot
    waiting = asyncio.create_task(session.get("/api/v1/integrations", headers={**headers, "X-Request-Id": "first"}))
    await read_topic(bootstrap_servers, topics.INTEGRATIONS_QUERIES, 1, match=lambda e: e.correlationid == "first")
    began = time.monotonic()
    async with session.get("/api/v1/integrations", headers=headers) as response:
        assert response.status == 503
        assert response.content_type == "application/problem+json"
        assert response.headers["Retry-After"]
        body = await response.json()
    assert time.monotonic() - began < 1.5, "refused at once, not after the reply timeout"
    assert body["type"].endswith("/overloaded") and body["request_id"] == response.headers["X-Request-Id"]
    first = await waiting
    assert first.status == 503 and (await first.json())["type"].endswith("/unavailable")  # nobody answers it
    first.release()
