"""A webhook registered right after its integration: the dispatcher, which learns integrations from
integrations.events a moment after they are created, asks the integrations service (their owner)
about one it does not know yet, instead of answering 404. Real gateway, integrations service and
dispatcher (conftest); the 503 case runs a gateway and a dispatcher of its own, on a database and a
broker of the test's own, with no integrations service at all."""
from __future__ import annotations

import asyncio
import time

import aiohttp
import pytest

from gateway.bootstrap import bootstrap as gateway_bootstrap
from gateway.config import GatewaySettings
from gateway.tenants import create_tenant
from integrations.adapters.repository import IntegrationRepository
from posint_common.testing import own_database as separate_database, started, unique
from posint_common.vault import new_key_entry
from webhook_dispatcher.bootstrap import bootstrap as webhooks_bootstrap
from webhook_dispatcher.config import WebhooksSettings

HOOK = {"url": "https://hooks.example.com/posint", "events": ["order.created"]}
CUSTOM = {"name": "Web shop", "integration_type": "delivery", "provider": "custom", "config": {}, "credentials": {}}


def auth(key: str) -> dict:
    return {"Authorization": f"Bearer {key}"}


async def known(dispatcher, integration_id: int) -> dict | None:
    row = await dispatcher.pool.fetchrow(
        "SELECT tenant_id, provider, is_active, deleted FROM webhook_dispatcher.known_integrations WHERE id = $1",
        integration_id)
    return dict(row) if row else None


async def unannounced_integration(integrations_service, tenant_id: str, provider: str = "custom") -> int:
    """An integration the integrations service has, written straight into its schema: no event is
    ever published, so the dispatcher can only learn it by asking."""
    async with integrations_service.pool.acquire() as conn:
        return await IntegrationRepository(conn, tenant_id).add(provider, "Unannounced", "delivery")


async def test_a_webhook_registered_right_after_its_integration_is_created(
        api, gateway_service, integrations_service, webhooks_service):
    for attempt in range(10):
        _tenant_id, key = await create_tenant(gateway_service.pool, unique("hook-race"))
        async with api.post("/api/v1/integrations", json=CUSTOM, headers=auth(key)) as response:
            assert response.status == 201, await response.text()
            integration_id = (await response.json())["data"]["id"]
        async with api.post("/api/v1/webhooks", json={"integration_id": integration_id, **HOOK},
                            headers=auth(key)) as response:
            assert response.status == 201, f"attempt {attempt}: {response.status} {await response.text()}"
            assert (await response.json())["data"]["integration_id"] == integration_id


async def test_an_integration_the_dispatcher_never_heard_of_is_asked_of_its_owner_and_learnt(
        api, gateway_service, integrations_service, webhooks_service):
    tenant_id, key = await create_tenant(gateway_service.pool, unique("hook-ask"))
    integration_id = await unannounced_integration(integrations_service, tenant_id)
    assert await known(webhooks_service, integration_id) is None
    async with api.post("/api/v1/webhooks", json={"integration_id": integration_id, **HOOK},
                        headers=auth(key)) as response:
        assert response.status == 201, await response.text()
    assert await known(webhooks_service, integration_id) == {
        "tenant_id": tenant_id, "provider": "custom", "is_active": True, "deleted": False}
    # learnt: a second endpoint needs no question (and gets the same answer)
    async with api.post("/api/v1/webhooks", json={"integration_id": integration_id, **HOOK},
                        headers=auth(key)) as response:
        assert response.status == 201, await response.text()


async def test_an_inactive_integration_is_learnt_as_inactive_and_accepted(
        api, gateway_service, integrations_service, webhooks_service):
    tenant_id, key = await create_tenant(gateway_service.pool, unique("hook-inactive"))
    integration_id = await unannounced_integration(integrations_service, tenant_id)
    await integrations_service.pool.execute(
        "UPDATE integrations.integrations SET is_active = false WHERE id = $1", integration_id)
    async with api.post("/api/v1/webhooks", json={"integration_id": integration_id, **HOOK},
                        headers=auth(key)) as response:
        assert response.status == 201, await response.text()  # the local rule: live, active or not
    assert (await known(webhooks_service, integration_id))["is_active"] is False


async def test_an_id_the_integrations_service_does_not_know_is_404(api, gateway_service, webhooks_service):
    _tenant_id, key = await create_tenant(gateway_service.pool, unique("hook-unknown"))
    async with api.post("/api/v1/webhooks", json={"integration_id": 9_000_000_000_000, **HOOK},
                        headers=auth(key)) as response:
        assert response.status == 404, await response.text()
        assert response.content_type == "application/problem+json"
        assert "integration 9000000000000" in (await response.json())["detail"]


async def test_another_tenants_integration_is_404_and_not_learnt(
        api, gateway_service, integrations_service, webhooks_service):
    owner_id, _owner_key = await create_tenant(gateway_service.pool, unique("hook-owner"))
    _other_id, other_key = await create_tenant(gateway_service.pool, unique("hook-other"))
    integration_id = await unannounced_integration(integrations_service, owner_id)
    async with api.post("/api/v1/webhooks", json={"integration_id": integration_id, **HOOK},
                        headers=auth(other_key)) as response:
        assert response.status == 404, await response.text()
        assert response.content_type == "application/problem+json"
    assert await known(webhooks_service, integration_id) is None


async def test_a_deleted_integration_is_404(api, gateway_service, integrations_service, webhooks_service):
    tenant_id, key = await create_tenant(gateway_service.pool, unique("hook-deleted"))
    integration_id = await unannounced_integration(integrations_service, tenant_id)
    await integrations_service.pool.execute(
        "UPDATE integrations.integrations SET deleted_at = now(), is_active = false WHERE id = $1", integration_id)
    async with api.post("/api/v1/webhooks", json={"integration_id": integration_id, **HOOK},
                        headers=auth(key)) as response:
        assert response.status == 404, await response.text()


# --- nobody owns integrations.queries -------------------------------------------------------------

LOOKUP_BOUND_MS = 1_500


@pytest.fixture
async def own_database(private_broker):
    """The gateway's and the dispatcher's fixed schemas in a database of the test's own, so the
    session's services (their outbox relays) never take this test's rows."""
    async with separate_database(private_broker.database_url, "hooklookup") as url:
        yield url


@pytest.fixture
async def without_integrations(private_broker, own_database):
    """A gateway and a dispatcher, and no integrations service."""
    common = {"database_url": own_database}
    dispatcher = await started(webhooks_bootstrap(private_broker.settings(
        WebhooksSettings, **common, webhooks_encryption_keys=new_key_entry("t"), webhooks_allow_http=True,
        webhooks_integration_lookup_timeout_ms=LOOKUP_BOUND_MS)))
    gateway = await started(gateway_bootstrap(private_broker.settings(GatewaySettings, **common, gateway_port=0)))
    _tenant_id, key = await create_tenant(gateway.pool, unique("hook-alone"))
    base = f"http://127.0.0.1:{gateway.ports['http']}"
    try:
        async with aiohttp.ClientSession(base_url=base, timeout=aiohttp.ClientTimeout(total=20)) as session:
            yield session, key, dispatcher, gateway
    finally:
        await asyncio.wait_for(gateway.stop(), 30)
        await asyncio.wait_for(dispatcher.stop(), 30)


async def test_without_the_integrations_service_the_answer_is_a_retryable_503_within_the_bound(without_integrations):
    session, key, dispatcher, gateway = without_integrations
    began = time.monotonic()
    async with session.post("/api/v1/webhooks", json={"integration_id": 41, **HOOK}, headers=auth(key)) as response:
        elapsed = time.monotonic() - began
        problem = await response.json(content_type=None)
        assert response.status == 503, problem
        assert response.content_type == "application/problem+json"
        assert int(response.headers["Retry-After"]) >= 1
    assert "integrations service" in problem["detail"] and "retry" in problem["detail"], problem
    # the dispatcher's bound, not the gateway's reply timeout (that would be a 504)
    assert elapsed < gateway.settings.reply_timeout_ms / 1000, elapsed
    assert await dispatcher.pool.fetchval("SELECT count(*) FROM webhook_dispatcher.endpoints") == 0
    assert await dispatcher.pool.fetchval("SELECT count(*) FROM webhook_dispatcher.known_integrations") == 0
