"""The integrations service's settings: the shared ones plus its key ring and public URL."""
from __future__ import annotations

from functools import cached_property

from pydantic import Field, SecretStr, field_validator

from posint_common.contracts.providers import BaseUrl
from posint_common.settings import ServiceSettings

from integrations.adapters.vault import KeyRing


class IntegrationsSettings(ServiceSettings):
    # Required, no default: a service that cannot decrypt must not start (see adapters/vault.py).
    integrations_encryption_keys: SecretStr = Field(description="kid1:base64key,kid0:base64key; the first encrypts")
    # Absolute base of the ``inbound_url`` shown to tenants (the gateway's public address); empty: relative.
    public_base_url: BaseUrl | None = None

    @field_validator("integrations_encryption_keys")
    @classmethod
    def _parses(cls, value: SecretStr) -> SecretStr:
        return KeyRing.checked_setting(value)

    @field_validator("public_base_url", mode="before")
    @classmethod
    def _empty_is_none(cls, value):
        return value or None

    @cached_property
    def key_ring(self) -> KeyRing:
        return KeyRing.parse(self.integrations_encryption_keys.get_secret_value())
