"""The gateway never hangs: a service that took the request but did not answer in time is 504, a
service that is not running or an unreachable broker is 503.

Uses its own broker with no integrations service, so nothing answers, and stops it for the 503.
"""
import asyncio
import time

import aiohttp
from aiokafka import AIOKafkaConsumer
import pytest

from gateway.bootstrap import bootstrap as gateway_bootstrap
from gateway.config import GatewaySettings
from gateway.tenants import create_tenant
from posint_common.contracts import topics
from posint_common.testing import started, unique


@pytest.fixture
async def lonely(private_broker):
    settings = GatewaySettings(
        database_url=private_broker.database_url, kafka_bootstrap_servers=private_broker.bootstrap_servers,
        gateway_port=0, health_port=0,
        reply_timeout_ms=2_500, kafka_request_timeout_ms=1_000,  # room for the silent service to commit on a busy box
    )
    runtime = await started(gateway_bootstrap(settings))
    _tenant_id, key = await create_tenant(runtime.pool, unique("lonely"))
    base = f"http://127.0.0.1:{runtime.ports['http']}"
    async with aiohttp.ClientSession(base_url=base, timeout=aiohttp.ClientTimeout(total=20)) as session:
        yield session, {"Authorization": f"Bearer {key}"}, private_broker.broker
    await asyncio.wait_for(runtime.stop(), 30)


async def silent_service(bootstrap_servers: str, joined: asyncio.Event, stop: asyncio.Event) -> None:
    """Joins the integrations query group and commits what it reads, but never replies."""
    consumer = AIOKafkaConsumer(topics.INTEGRATIONS_QUERIES, bootstrap_servers=bootstrap_servers,
                                group_id="integrations.queries", enable_auto_commit=False, fetch_max_wait_ms=20,
                                session_timeout_ms=6_000, heartbeat_interval_ms=2_000, auto_offset_reset="earliest")
    await consumer.start()
    try:
        while not consumer.assignment():
            await consumer.getmany(timeout_ms=100)
        joined.set()
        while not stop.is_set():
            if await consumer.getmany(timeout_ms=100):
                await consumer.commit()
    finally:
        await consumer.stop()


async def test_a_service_that_takes_the_request_but_never_answers_is_504(lonely):
    session, headers, broker = lonely
    joined, stop = asyncio.Event(), asyncio.Event()
    silent = asyncio.create_task(silent_service(broker.bootstrap_servers, joined, stop))
    try:
        await asyncio.wait_for(joined.wait(), 30)
        began = time.monotonic()
        async with session.get("/api/v1/integrations", headers=headers) as response:
            assert response.status == 504
            assert response.content_type == "application/problem+json"
            body = await response.json()
        assert body["status"] == 504 and body["request_id"] == response.headers["X-Request-Id"]
        assert time.monotonic() - began < 15
    finally:
        stop.set()
        await silent


async def test_a_service_that_is_not_running_is_503(lonely):
    session, headers, _broker = lonely
    began = time.monotonic()
    async with session.get("/api/v1/integrations", headers=headers) as response:
        assert response.status == 503
        assert response.content_type == "application/problem+json"
        assert "not running" in (await response.json())["detail"]
        assert response.headers["Retry-After"]
    assert time.monotonic() - began < 10


async def test_unreachable_broker_is_503(lonely):
    session, headers, broker = lonely
    broker.stop()
    async with session.get("/api/v1/integrations", headers=headers) as response:
        assert response.status == 503
        assert response.content_type == "application/problem+json"
        body = await response.json()
    assert body["status"] == 503 and "broker" in body["detail"]
