"""The webhook dispatcher's settings: the shared ones plus its key ring and the http exception."""
from __future__ import annotations

from functools import cached_property

from pydantic import Field, SecretStr, field_validator, model_validator

from posint_common.egress import EgressPolicy
from posint_common.settings import ServiceSettings

from webhook_dispatcher.adapters.vault import KeyRing


class WebhooksSettings(ServiceSettings):
    # Required, no default: signing secrets are sealed at rest, and a service that cannot open them must not start.
    webhooks_encryption_keys: SecretStr = Field(description="kid1:base64key,kid0:base64key; the first encrypts")
    # Plain http endpoint URLs (dev and tests, where receivers run on 127.0.0.1); https only otherwise.
    webhooks_allow_http: bool = False
    # Delivery. Waits before each retry (seconds, ±jitter); compress them for tests ("0.1,0.2").
    webhooks_retry_schedule_s: str = Field(default="5,300,1800,7200,18000,36000,36000", pattern=r"^\s*[0-9.]+(\s*,\s*[0-9.]+)*\s*$")
    webhooks_retry_jitter: float = Field(default=0.2, ge=0, lt=1)
    webhooks_retry_after_max_s: float = Field(default=36_000, ge=0)  # a receiver's Retry-After is honoured up to this
    webhooks_disable_after_s: float = Field(default=5 * 86_400, gt=0)  # failing every attempt this long: disabled
    webhooks_connect_timeout_s: float = Field(default=5, gt=0, le=60)
    webhooks_attempt_timeout_s: float = Field(default=15, gt=0, le=120)
    webhooks_max_in_flight: int = Field(default=256, ge=1, le=10_000)  # first attempts at once (per process)
    webhooks_max_retries_in_flight: int = Field(default=64, ge=1, le=10_000)  # retries at once, apart from those
    webhooks_max_in_flight_per_endpoint: int = Field(default=4, ge=1, le=1_000)  # per lane and process
    webhooks_poll_interval_ms: int = Field(default=500, ge=10, le=60_000)  # besides NOTIFY: due retries, stragglers
    webhooks_rotation_overlap_s: float = Field(default=86_400, ge=0)  # both signatures for this long after a rotation
    # Retention (adapters/retention.py): delivered messages and their attempts, finally failed ones
    # (kept longer, for recover), pruned every webhooks_prune_interval_s. Pending messages stay.
    webhooks_retention_hours: int = Field(default=720, ge=1, le=87_600)
    webhooks_failed_retention_hours: int = Field(default=2_160, ge=1, le=87_600)
    webhooks_prune_interval_s: float = Field(default=300, gt=0, le=86_400)
    # A claimed message is taken again this long after its attempt's timeout (a worker that died).
    webhooks_lease_margin_s: float = Field(default=15, gt=0, le=3_600)
    # POST /webhooks for an integration not learnt from integrations.events yet asks the integrations
    # service; past this bound it answers 503. It holds the command consumer meanwhile, and the answer
    # must reach the gateway within its REPLY_TIMEOUT_MS (5 s): keep it well below.
    webhooks_integration_lookup_timeout_ms: int = Field(default=3_000, ge=100, le=60_000)

    @model_validator(mode="after")
    def _failed_kept_longer(self) -> "WebhooksSettings":
        if self.webhooks_failed_retention_hours < self.webhooks_retention_hours:
            raise ValueError("WEBHOOKS_FAILED_RETENTION_HOURS must be at least WEBHOOKS_RETENTION_HOURS")
        return self

    @field_validator("webhooks_retry_schedule_s")
    @classmethod
    def _schedule(cls, value: str) -> str:
        cls.schedule_of(value)
        return value

    @staticmethod
    def schedule_of(value: str) -> tuple[float, ...]:
        return tuple(float(step) for step in value.split(","))

    @property
    def retry_schedule(self) -> tuple[float, ...]:
        return self.schedule_of(self.webhooks_retry_schedule_s)

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
