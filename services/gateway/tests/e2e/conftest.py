"""The real gateway and integrations service, in-process, on the session's embedded Postgres and
broker; two tenants with their own keys and integrations."""
from dataclasses import dataclass

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
from posint_common.testing import started, unique


@dataclass
class Tenant:
    id: str
    key: str


@pytest.fixture(scope="session")
async def integrations_service(infra):
    keys = new_key_entry("test")  # the key ring is explicit configuration, never a default
    runtime = await started(integrations_bootstrap(infra.settings(IntegrationsSettings, integrations_encryption_keys=keys)))
    yield runtime
    await runtime.stop()


@pytest.fixture(scope="session")
async def gateway_service(infra, integrations_service):
    runtime = await started(gateway_bootstrap(infra.settings(GatewaySettings, gateway_port=0)))
    yield runtime
    await runtime.stop()


@pytest.fixture(scope="session")
async def tenants(gateway_service, integrations_service):
    """Tenant 'a' has the two demo integrations, tenant 'b' one Uber Eats integration."""
    made = {}
    for label in ("a", "b"):
        tenant_id, key = await create_tenant(gateway_service.pool, unique(f"tenant-{label}"))
        made[label] = Tenant(tenant_id, key)
    await seed_demo_integrations(integrations_service.pool, made["a"].id)
    async with integrations_service.pool.acquire() as conn:
        await IntegrationRepository(conn, made["b"].id).add("ubereats", "Uber Eats", "delivery")
    return made


@pytest.fixture
async def api(gateway_service):
    base = f"http://127.0.0.1:{gateway_service.ports['http']}"
    async with aiohttp.ClientSession(base_url=base, timeout=aiohttp.ClientTimeout(total=15)) as session:
        yield session


def bearer(tenant: Tenant) -> dict:
    return {"Authorization": f"Bearer {tenant.key}"}
