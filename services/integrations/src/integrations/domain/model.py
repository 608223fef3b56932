"""Integrations as the service sees them; no I/O. Providers and their shapes are published in
posint_common.contracts.providers, so the gateway validates what this service stores."""
from __future__ import annotations

import base64
import secrets
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from pydantic import BaseModel

from posint_common.contracts.providers import CONFIG_MODELS, PROVIDER_NAMES, PROVIDER_TYPES, IntegrationType, Provider
from posint_common.vault import Sealed

__all__ = ["PROVIDERS", "Integration", "IntegrationType", "Sealed", "merged_config", "new_inbound_secret"]

# provider -> (display name, type): what the demo seed gives a new integration.
PROVIDERS = {provider.value: (PROVIDER_NAMES[provider], PROVIDER_TYPES[provider]) for provider in Provider}

INBOUND_SECRET_PREFIX = "whsec_"
CREDENTIALS = "credentials"  # the purposes a sealed value is bound to (associated data)
INBOUND_SECRET = "inbound_secret"


def new_inbound_secret() -> str:
    """Standard Webhooks' secret form: ``whsec_`` + base64 of 32 random bytes."""
    return INBOUND_SECRET_PREFIX + base64.b64encode(secrets.token_bytes(32)).decode()


def merged_config(provider: str, current: dict[str, Any], patch: dict[str, Any]) -> BaseModel:
    """``current`` with ``patch``'s keys over it (null: back to the default), validated against the
    provider's model; raises pydantic's ValidationError naming the bad keys."""
    merged = {**current, **patch}
    return CONFIG_MODELS[Provider(provider)].model_validate({k: v for k, v in merged.items() if v is not None})


@dataclass(frozen=True)
class Integration:
    id: int
    tenant_id: str
    name: str
    integration_type: str
    provider: str
    is_active: bool
    config: dict[str, Any]
    last_sync_at: datetime | None
    created_at: datetime
    updated_at: datetime
    last_sync_status: str | None
    last_sync_error: str | None
    last_inbound_order_at: datetime | None
    token_expires_at: datetime | None
    credentials: Sealed | None
    inbound_secret: Sealed | None
