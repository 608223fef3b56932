"""The integrations service's settings: the shared ones plus its key ring and public URL."""
from __future__ import annotations

from functools import cached_property

from pydantic import Field, SecretStr, field_validator

from posint_common.contracts.providers import BaseUrl
from posint_common.settings import ServiceSettings

from integrations.adapters.providers.client import ClientOptions
from integrations.adapters.vault import KeyRing


class IntegrationsSettings(ServiceSettings):
    # Required, no default: a service that cannot decrypt must not start (see adapters/vault.py).
    integrations_encryption_keys: SecretStr = Field(description="kid1:base64key,kid0:base64key; the first encrypts")
    # Absolute base of the ``inbound_url`` shown to tenants (the gateway's public address); empty: relative.
    public_base_url: BaseUrl | None = None

    # Sync runs (entrypoints/sync_worker.py) and provider API calls (adapters/providers/client.py).
    sync_poll_interval_ms: int = Field(default=500, ge=10, le=60_000)
    sync_max_concurrent: int = Field(default=4, ge=1, le=64)
    sync_fetch_timeout_s: float = Field(default=300, gt=0, le=3600)
    provider_connect_timeout_s: float = Field(default=5, gt=0, le=60)
    provider_total_timeout_s: float = Field(default=15, gt=0, le=300)
    provider_attempts: int = Field(default=4, ge=1, le=20)
    provider_retry_wait_max_s: float = Field(default=5, ge=0, le=300)
    provider_deadline_s: float = Field(default=45, gt=0, le=3600)
    # Pushes to platforms (entrypoints/push_worker.py): status updates and ledger bookings.
    push_poll_interval_ms: int = Field(default=500, ge=10, le=60_000)
    push_batch: int = Field(default=20, ge=1, le=500)
    push_retry_initial_ms: int = Field(default=1000, ge=1, le=600_000)
    push_retry_max_s: float = Field(default=300, gt=0, le=86_400)
    status_push_deadline_s: float = Field(default=600, gt=0, le=86_400)
    sale_push_max_attempts: int = Field(default=20, ge=1, le=1000)

    @field_validator("integrations_encryption_keys")
    @classmethod
    def _parses(cls, value: SecretStr) -> SecretStr:
        return KeyRing.checked_setting(value)

    @field_validator("public_base_url", mode="before")
    @classmethod
    def _empty_is_none(cls, value):
        return value or None

    @property
    def client_options(self) -> ClientOptions:
        return ClientOptions(
            connect_timeout_s=self.provider_connect_timeout_s, total_timeout_s=self.provider_total_timeout_s,
            attempts=self.provider_attempts, deadline_s=self.provider_deadline_s, wait_max_s=self.provider_retry_wait_max_s,
            wait_initial_s=min(0.2, self.provider_retry_wait_max_s), wait_jitter_s=min(0.5, self.provider_retry_wait_max_s),
        )

    @cached_property
    def key_ring(self) -> KeyRing:
        return KeyRing.parse(self.integrations_encryption_keys.get_secret_value())
