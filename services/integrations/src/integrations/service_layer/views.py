"""An integration as replies and events show it: never its credentials, never its inbound secret
(except in the one reply that creates it)."""
from __future__ import annotations

from posint_common.contracts import integrations as contract

from integrations.domain.model import Integration

INBOUND_PATH = "/api/v1/integrations/{id}/inbound"


def inbound_url(integration_id: int, public_base_url: str | None) -> str:
    return (public_base_url or "") + INBOUND_PATH.format(id=integration_id)


def detail(integration: Integration, public_base_url: str | None) -> contract.IntegrationDetail:
    return contract.IntegrationDetail(
        id=integration.id,
        name=integration.name,
        integration_type=integration.integration_type,
        provider=integration.provider,
        is_active=integration.is_active,
        last_sync_at=integration.last_sync_at,
        config=integration.config,
        inbound_url=inbound_url(integration.id, public_base_url),
        created_at=integration.created_at,
        updated_at=integration.updated_at,
        health=contract.IntegrationHealth(
            last_sync_status=integration.last_sync_status,
            last_sync_error=integration.last_sync_error,
            last_inbound_order_at=integration.last_inbound_order_at,
            token_expires_at=integration.token_expires_at,
        ),
    )


def state(integration: Integration) -> dict:
    """The fields every integration event carries."""
    return {
        "id": integration.id, "name": integration.name, "integration_type": integration.integration_type,
        "provider": integration.provider, "is_active": integration.is_active, "config": integration.config,
    }
