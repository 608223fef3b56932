"""Sealing an integration's secrets with the key ring, each bound to its tenant, integration and
purpose (associated data), so a value moved to another row or column does not open."""
from __future__ import annotations

import json

from pydantic import BaseModel

from integrations.adapters.vault import KeyRing, associated_data
from integrations.domain.model import CREDENTIALS, INBOUND_SECRET, Integration, Sealed


class Secrets:
    def __init__(self, keys: KeyRing) -> None:
        self.keys = keys

    def seal_credentials(self, tenant_id: str, integration_id: int, credentials: BaseModel) -> Sealed:
        plaintext = credentials.model_dump_json(exclude_none=True).encode()  # JSON mode writes SecretStr out
        return self.keys.seal(plaintext, associated_data(tenant_id, integration_id, CREDENTIALS))

    def seal_inbound_secret(self, tenant_id: str, integration_id: int, secret: str) -> Sealed:
        return self.keys.seal(secret.encode(), associated_data(tenant_id, integration_id, INBOUND_SECRET))

    def credentials(self, integration: Integration) -> dict[str, str] | None:
        if integration.credentials is None:
            return None
        aad = associated_data(integration.tenant_id, integration.id, CREDENTIALS)
        return json.loads(self.keys.open(integration.credentials, aad))

    def inbound_secret(self, integration: Integration) -> str | None:
        if integration.inbound_secret is None:
            return None
        aad = associated_data(integration.tenant_id, integration.id, INBOUND_SECRET)
        return self.keys.open(integration.inbound_secret, aad).decode()
