"""Demo data for a fresh ``make run``: two integrations shaped like the contract's example."""
from __future__ import annotations

import asyncpg

from posint_common.contracts.providers import CONFIG_MODELS, Provider
from posint_common.envelope import utcnow

from integrations.adapters.repository import IntegrationRepository
from integrations.domain.model import PROVIDERS

# provider, synced already, its config (no credentials: the demo talks to no real platform)
DEMO_PROVIDERS = (("doordash", True, {"store_id": "demo-store"}), ("quickbooks", False, {"realm_id": "demo-realm"}))


async def seed_demo_integrations(pool: asyncpg.Pool, tenant_id: str) -> list[int]:
    """Idempotent: a second run adds nothing. DoorDash gets a last sync time, QuickBooks none."""
    added = []
    async with pool.acquire() as conn, conn.transaction():
        repository = IntegrationRepository(conn, tenant_id)
        for provider, synced, config in DEMO_PROVIDERS:
            name, kind = PROVIDERS[provider]
            config = CONFIG_MODELS[Provider(provider)].model_validate(config).model_dump(mode="json")
            new_id = await repository.add(provider, name, kind, utcnow().replace(microsecond=0) if synced else None, config)
            if new_id is not None:
                added.append(new_id)
    return added
