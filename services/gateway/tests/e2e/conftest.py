"""The real gateway, integrations and orders services, in-process, on the session's embedded Postgres and
broker; two tenants with their own keys and integrations."""

import aiohttp
import pytest

from gateway.bootstrap import bootstrap as gateway_bootstrap
from gateway.config import GatewaySettings
from gateway.tenants import create_tenant
from integrations.adapters.repository import IntegrationRepository
from integrations.adapters.vault import new_key_entry
from integrations.bootstrap import bootstrap as integrations_bootstrap
from integrations.config import IntegrationsSettings
from integrations.seed import seed_demo_integrations
from orders.adapters.repository import OrderRepository
from orders.bootstrap import bootstrap as orders_bootstrap
from orders.domain.lifecycle import Source, Status
from posint_common.contracts.inbound import NormalizedOrder
from posint_common.envelope import utcnow
from posint_common.testing import Tenant, started, unique
from webhook_dispatcher.bootstrap import bootstrap as webhooks_bootstrap
from webhook_dispatcher.config import WebhooksSettings
from webhook_dispatcher.seed import seed_endpoint


# Sync runs and platform pushes on a compressed schedule: polls, retries and timeouts in fractions of a second.
FAST_PLATFORM_CALLS = {"sync_poll_interval_ms": 100, "push_poll_interval_ms": 100, "push_retry_initial_ms": 100,
                       "push_retry_max_s": 1, "provider_total_timeout_s": 2, "provider_attempts": 2,
                       "provider_retry_wait_max_s": 0.2, "provider_deadline_s": 5,
                       "status_push_deadline_s": 4}


@pytest.fixture(scope="session")
async def integrations_service(infra):
    keys = new_key_entry("test")  # the key ring is explicit configuration, never a default
    settings = infra.settings(IntegrationsSettings, integrations_encryption_keys=keys, **FAST_PLATFORM_CALLS)
    runtime = await started(integrations_bootstrap(settings))
    yield runtime
    await runtime.stop()


@pytest.fixture(scope="session")
async def orders_service(infra):
    runtime = await started(orders_bootstrap(infra.settings()))
    yield runtime
    await runtime.stop()


@pytest.fixture(scope="session")
async def webhooks_service(infra):
    settings = infra.settings(WebhooksSettings, webhooks_encryption_keys=new_key_entry("test"), webhooks_allow_http=True)
    runtime = await started(webhooks_bootstrap(settings))
    yield runtime
    await runtime.stop()


@pytest.fixture(scope="session")
async def gateway_service(infra, integrations_service):
    runtime = await started(gateway_bootstrap(infra.settings(GatewaySettings, gateway_port=0)))
    yield runtime
    await runtime.stop()


@pytest.fixture(scope="session")
async def tenants(gateway_service, integrations_service, orders_service, webhooks_service):
    """Tenant 'a' has the two demo integrations, an external order and a webhook endpoint, tenant 'b' one Uber
    Eats integration."""
    made = {}
    for label in ("a", "b"):
        tenant_id, key = await create_tenant(gateway_service.pool, unique(f"tenant-{label}"))
        made[label] = Tenant(tenant_id, key)
    doordash_id, _ = await seed_demo_integrations(integrations_service.pool, made["a"].id)
    await seed_order(orders_service.pool, made["a"].id, doordash_id)
    await seed_endpoint(webhooks_service.pool, webhooks_service.settings.key_ring, made["a"].id, doordash_id, "doordash",
                        "https://hooks.example.com/posint", ["order.created"])
    async with integrations_service.pool.acquire() as conn:
        await IntegrationRepository(conn, made["b"].id).add("ubereats", "Uber Eats", "delivery")
    return made


async def seed_order(pool, tenant_id: str, integration_id: int) -> None:
    """An order as the hand-over leaves it (``received``), written straight into the orders schema."""
    normalized = NormalizedOrder(external_id=unique("seed"), placed_at=utcnow(), fulfillment="pickup",
                                 items=[{"name": "Tea", "quantity": 1, "unit_price": "2.50"}],
                                 subtotal="2.50", tax="0", total="2.50", currency="USD").model_dump(mode="json")
    async with pool.acquire() as conn, conn.transaction():
        repository = OrderRepository(conn, tenant_id)
        order = await repository.add(integration_id, "doordash", normalized["external_id"], normalized, normalized,
                                     utcnow(), None)
        await repository.record(order.id, None, Status.RECEIVED, Source.PLATFORM)


@pytest.fixture
async def api(gateway_service):
    base = f"http://127.0.0.1:{gateway_service.ports['http']}"
    async with aiohttp.ClientSession(base_url=base, timeout=aiohttp.ClientTimeout(total=15)) as session:
        yield session


def bearer(tenant: Tenant) -> dict:
    return {"Authorization": f"Bearer {tenant.key}"}
