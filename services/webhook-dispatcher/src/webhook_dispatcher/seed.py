"""Seeding for tests and demos: an endpoint written straight into the dispatcher's tables, with the
integration it belongs to recorded as its events would have."""
from __future__ import annotations

import asyncpg

from posint_common.envelope import utcnow

from webhook_dispatcher.adapters.repository import EndpointRepository, learn_integration
from webhook_dispatcher.adapters.vault import KeyRing, associated_data
from webhook_dispatcher.domain.model import new_secret


async def seed_endpoint(pool: asyncpg.Pool, keys: KeyRing, tenant_id: str, integration_id: int, provider: str,
                        url: str, events: list[str]) -> tuple[int, str]:
    """Returns the endpoint's id and its signing secret."""
    async with pool.acquire() as conn, conn.transaction():
        await learn_integration(conn, integration_id, tenant_id, provider, is_active=True, deleted=False, at=utcnow())
        repository = EndpointRepository(conn, tenant_id)
        endpoint_id, secret = await repository.next_id(), new_secret()
        sealed = keys.seal(secret.encode(), associated_data(tenant_id, endpoint_id))
        await repository.create(endpoint_id, integration_id, url, events, sealed)
    return endpoint_id, secret
