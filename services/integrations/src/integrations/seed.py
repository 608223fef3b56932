"""Demo data for a fresh ``make run``: two integrations shaped like the contract's example, and
(``connect_demo_integrations``) their connection to the sandbox platforms."""
from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import asyncpg

from posint_common.contracts.providers import CONFIG_MODELS, CREDENTIAL_MODELS, Provider
from posint_common.envelope import utcnow

from integrations.adapters.repository import IntegrationRepository
from integrations.adapters.vault import KeyRing
from integrations.domain.model import PROVIDERS, merged_config, new_inbound_secret
from integrations.service_layer.secrets import Secrets

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


@dataclass(frozen=True)
class DemoConnection:
    """What `make run` tells a demo integration: config to merge (the sandbox platform's URLs and
    ids), credentials the platform accepts, and the inbound secret its pushes are signed with."""

    provider: str
    config: dict[str, Any]
    credentials: dict[str, str]
    inbound_secret: str | None = None  # None: a new one


@dataclass(frozen=True)
class DemoIntegration:
    id: int
    provider: str
    inbound_secret: str


async def connect_demo_integrations(
    pool: asyncpg.Pool, tenant_id: str, keys: KeyRing, connections: list[DemoConnection],
) -> list[DemoIntegration]:
    """Point the tenant's live integrations of these providers (created when missing) at the
    sandbox: config merged and validated, credentials and inbound secret sealed like the API seals
    them. Run at every `make run`, since the sandbox's port may change."""
    secrets = Secrets(keys)
    connected = []
    async with pool.acquire() as conn, conn.transaction():
        repository = IntegrationRepository(conn, tenant_id)
        for connection in connections:
            provider = Provider(connection.provider)
            integration_id = await repository.live_id(provider.value)
            if integration_id is None:
                name, kind = PROVIDERS[provider.value]
                integration_id = await repository.add(provider.value, name, kind)
            current = await repository.get(integration_id)
            config = merged_config(provider.value, current.config, connection.config).model_dump(mode="json")
            credentials = CREDENTIAL_MODELS[provider].model_validate(connection.credentials)
            inbound_secret = connection.inbound_secret or new_inbound_secret()
            sealed_credentials = secrets.seal_credentials(tenant_id, integration_id, credentials)
            sealed_secret = secrets.seal_inbound_secret(tenant_id, integration_id, inbound_secret)
            await conn.execute(
                "UPDATE integrations SET config = $3::jsonb, credentials = $4, credentials_key_id = $5,"
                " inbound_secret = $6, inbound_secret_key_id = $7, updated_at = now()"
                " WHERE tenant_id = $1 AND id = $2",
                tenant_id, integration_id, json.dumps(config), sealed_credentials.blob, sealed_credentials.key_id,
                sealed_secret.blob, sealed_secret.key_id,
            )
            connected.append(DemoIntegration(integration_id, provider.value, inbound_secret))
    return connected
