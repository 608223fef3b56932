"""The webhook dispatcher's settings: the shared ones plus its key ring and the http exception."""
from __future__ import annotations

from functools import cached_property

from pydantic import Field, SecretStr, field_validator

from posint_common.egress import EgressPolicy
from posint_common.settings import ServiceSettings

from webhook_dispatcher.adapters.vault import KeyRing


class WebhooksSettings(ServiceSettings):
    # Required, no default: signing secrets are sealed at rest, and a service that cannot open them must not start.
    webhooks_encryption_keys: SecretStr = Field(description="kid1:base64key,kid0:base64key; the first encrypts")
    # Plain http endpoint URLs (dev and tests, where receivers run on 127.0.0.1); https only otherwise.
    webhooks_allow_http: bool = False

    @field_validator("webhooks_encryption_keys")
    @classmethod
    def _parses(cls, value: SecretStr) -> SecretStr:
        return KeyRing.checked_setting(value)

    @cached_property
    def key_ring(self) -> KeyRing:
        return KeyRing.parse(self.webhooks_encryption_keys.get_secret_value())

    @cached_property
    def egress(self) -> EgressPolicy:
        return EgressPolicy.from_settings(self)
