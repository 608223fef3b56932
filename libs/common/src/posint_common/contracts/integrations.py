"""Messages of the integrations service."""
from __future__ import annotations

from datetime import datetime, timezone
from enum import Enum
from typing import Annotated, Any

from pydantic import (
    BaseModel, ConfigDict, Field, PlainSerializer, StrictBool, ValidationInfo, field_serializer, field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError

from posint_common.contracts.providers import (
    CONFIG_MODELS, CREDENTIAL_MODELS, PROVIDER_TYPES, AnyConfig, AnyCredentials, IntegrationType, Name, Provider, Secret,
)
from posint_common.contracts.types import PgId

LIST_INTEGRATIONS = "posint.integrations.list-integrations.v1"

MAX_PAGE_SIZE = 200
DEFAULT_PAGE_SIZE = 100


class ListIntegrations(BaseModel):
    """Query: a page of the tenant's integrations, ordered by id (tenant comes from the envelope)."""

    limit: int = Field(default=DEFAULT_PAGE_SIZE, ge=1, le=MAX_PAGE_SIZE)
    after_id: PgId | None = None


class IntegrationView(BaseModel):
    id: PgId
    name: str
    integration_type: str
    provider: str
    is_active: bool
    last_sync_at: datetime | None = None

    @field_serializer("last_sync_at")
    def _utc_seconds(self, value: datetime | None) -> str | None:
        return utc_seconds(value) if value else None


class IntegrationList(BaseModel):
    data: list[IntegrationView]


# --- Managing integrations ----------------------------------------------------------------------
# Commands (integrations.commands), a query (integrations.queries) and events (integrations.events,
# key = integration id). Config is not secret and travels in events; credentials and the inbound
# secret never leave the integrations service except in the create command (credentials) and its
# reply (the inbound secret, shown once).

GET_INTEGRATION = "posint.integrations.get-integration.v1"
CREATE_INTEGRATION = "posint.integrations.create-integration.v1"
UPDATE_INTEGRATION = "posint.integrations.update-integration.v1"
DELETE_INTEGRATION = "posint.integrations.delete-integration.v1"
INTEGRATION_CREATED = "posint.integrations.integration-created.v1"
INTEGRATION_UPDATED = "posint.integrations.integration-updated.v1"
INTEGRATION_DEACTIVATED = "posint.integrations.integration-deactivated.v1"
SYNC_STARTED = "posint.integrations.sync-started.v1"
SYNC_COMPLETED = "posint.integrations.sync-completed.v1"
SYNC_FAILED = "posint.integrations.sync-failed.v1"


def utc_seconds(value: datetime) -> str:
    """The API's one timestamp form, as in the contract: ``2026-01-04T18:00:00Z``."""
    return value.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


UtcSeconds = Annotated[datetime, PlainSerializer(utc_seconds, return_type=str)]


def _by_provider(models: dict, value: Any, info: ValidationInfo) -> Any:
    """Validate ``value`` with the model of the provider given before it. Without a valid provider
    there is nothing to check it against, and the provider's own error already fails the request."""
    provider = info.data.get("provider")
    return value if provider is None else models[provider].model_validate(value)


class CreateIntegration(BaseModel):
    """Command, and the body of ``POST /integrations``: ``config`` and ``credentials`` have the
    shape of the provider's models (posint_common.contracts.providers)."""

    model_config = ConfigDict(extra="forbid", hide_input_in_errors=True)

    name: Name
    integration_type: IntegrationType
    provider: Provider
    config: AnyConfig = Field(description="Non-secret settings; their shape depends on the provider.")
    credentials: AnyCredentials = Field(description="Secrets; their shape depends on the provider. Never returned.")

    @field_validator("provider")
    @classmethod
    def _fits_type(cls, provider: Provider, info: ValidationInfo) -> Provider:
        kind = info.data.get("integration_type")
        if kind is not None and PROVIDER_TYPES[provider] != kind:
            fitting = ", ".join(p for p, t in PROVIDER_TYPES.items() if t == kind)
            raise PydanticCustomError(
                "provider_type_mismatch", "'{provider}' is not a {kind} provider; {kind} providers: {fitting}",
                {"provider": provider.value, "kind": kind.value, "fitting": fitting},
            )
        return provider

    @field_validator("config", mode="wrap")
    @classmethod
    def _config(cls, value: Any, _handler, info: ValidationInfo) -> Any:
        return _by_provider(CONFIG_MODELS, value, info)

    @field_validator("credentials", mode="wrap")
    @classmethod
    def _credentials(cls, value: Any, _handler, info: ValidationInfo) -> Any:
        return _by_provider(CREDENTIAL_MODELS, value, info)


class UpdateIntegrationFields(BaseModel):
    """Body of ``PATCH /integrations/{id}``: at least one field. ``config`` is merged key by key
    into the current config (a key set to null returns to its default) and the result validated
    against the provider's model by the integrations service; ``credentials`` replaces them whole."""

    model_config = ConfigDict(extra="forbid", hide_input_in_errors=True)

    # Absent means unchanged; null is refused (the types do not take None).
    name: Name = Field(default=None)
    is_active: StrictBool = Field(default=None)
    config: dict[str, Any] = Field(default=None, max_length=50)
    credentials: dict[str, Secret] = Field(default=None, max_length=50)

    @model_validator(mode="after")
    def _something(self) -> "UpdateIntegrationFields":
        if not self.model_fields_set:
            raise PydanticCustomError("empty_update", "give at least one of name, is_active, config, credentials")
        return self


class UpdateIntegration(UpdateIntegrationFields):
    """Command: the PATCH of one integration (tenant from the envelope)."""

    id: PgId


class IntegrationRef(BaseModel):
    """Query ``get-integration`` and command ``delete-integration``: one integration by id."""

    id: PgId


class IntegrationHealth(BaseModel):
    """What is known about the connection; null until it happens (sync runs, inbound orders)."""

    last_sync_status: str | None = None
    last_sync_error: str | None = None
    last_inbound_order_at: UtcSeconds | None = None
    token_expires_at: UtcSeconds | None = None


class IntegrationDetail(BaseModel):
    """One integration as ``GET /integrations/{id}`` shows it: every key present, null when unknown."""

    id: PgId
    name: str
    integration_type: str
    provider: str
    is_active: bool
    last_sync_at: UtcSeconds | None = None
    config: dict[str, Any]
    inbound_url: str
    created_at: UtcSeconds
    updated_at: UtcSeconds
    health: IntegrationHealth


class NewIntegration(IntegrationDetail):
    """The 201 of ``POST /integrations``: the only time ``inbound_secret`` is shown."""

    inbound_secret: str = Field(description="Signs inbound pushes; 'whsec_' + base64 of 32 random bytes. Shown once.")


class IntegrationDocument(BaseModel):
    data: IntegrationDetail


class NewIntegrationDocument(BaseModel):
    data: NewIntegration


class IntegrationState(BaseModel):
    """The non-secret state of an integration, as events carry it."""

    id: PgId
    name: str
    integration_type: str
    provider: str
    is_active: bool
    config: dict[str, Any]


class IntegrationCreated(IntegrationState):
    created_at: UtcSeconds


class IntegrationUpdated(IntegrationState):
    changed: list[str] = Field(description="Fields the update changed; 'credentials' when they were replaced.")
    updated_at: UtcSeconds


class IntegrationDeactivated(BaseModel):
    """DELETE: the integration is inactive and hidden; its rows (and its orders) stay."""

    id: PgId
    integration_type: str
    provider: str
    deactivated_at: UtcSeconds


# --- Sync runs ------------------------------------------------------------------------------------
# A command starts a run (integrations.commands, key = integration id); the integrations service
# runs it in the background and reports on integrations.events (key = integration id). Two queries
# read the runs (integrations.queries).

START_SYNC = "posint.integrations.start-sync.v1"  # payload: IntegrationRef
LIST_SYNC_RUNS = "posint.integrations.list-sync-runs.v1"
GET_SYNC_RUN = "posint.integrations.get-sync-run.v1"


class SyncStatus(str, Enum):
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"


class ListSyncRuns(BaseModel):
    """Query: a page of one integration's sync runs, newest first; ``after_id`` is the last id of the
    previous page (runs started meanwhile never shift a page)."""

    integration_id: PgId
    limit: int = Field(default=DEFAULT_PAGE_SIZE, ge=1, le=MAX_PAGE_SIZE)
    after_id: PgId | None = None


class SyncRunRef(BaseModel):
    """Query ``get-sync-run``: one run by id."""

    id: PgId


class SyncRunStarted(BaseModel):
    """The answer of ``POST /integrations/{id}/sync`` (the contract's shape): the run just started,
    or the one already running."""

    id: PgId
    integration_id: PgId
    status: SyncStatus
    started_at: UtcSeconds


class SyncRunStartedDocument(BaseModel):
    data: SyncRunStarted


class SyncCounts(BaseModel):
    fetched: int = Field(default=0, description="Orders the platform listed since the last watermark.")
    created: int = Field(default=0, description="New orders handed over.")
    updated: int = Field(default=0, description="Known orders the platform changed, handed over again.")
    duplicates: int = Field(default=0, description="Orders already known with the same content: nothing done.")
    failed: int = Field(default=0, description="Orders that could not be parsed (kept for inspection).")


class SyncRun(BaseModel):
    """One sync run with its counts; ``error`` and ``finished_at`` null while it runs."""

    id: PgId
    integration_id: PgId
    status: SyncStatus
    counts: SyncCounts
    error: str | None = None
    started_at: UtcSeconds
    finished_at: UtcSeconds | None = None


class SyncRunDocument(BaseModel):
    data: SyncRun


class SyncRunList(BaseModel):
    data: list[SyncRun]


class SyncStarted(BaseModel):
    """Event: a sync run started."""

    id: PgId = Field(description="The sync run.")
    integration_id: PgId
    provider: str
    started_at: UtcSeconds


class SyncCompleted(BaseModel):
    """Event: a sync run succeeded (``integration.sync.completed`` for webhooks)."""

    id: PgId = Field(description="The sync run.")
    integration_id: PgId
    provider: str
    started_at: UtcSeconds
    completed_at: UtcSeconds
    counts: SyncCounts


class SyncFailed(BaseModel):
    """Event: a sync run failed, or was cut off by a crash (``integration.sync.failed`` for webhooks)."""

    id: PgId = Field(description="The sync run.")
    integration_id: PgId
    provider: str
    error: str
    started_at: UtcSeconds
    failed_at: UtcSeconds
    counts: SyncCounts


# --- Status sent back to the platforms ------------------------------------------------------------
# The integrations service sends an order's status (from the orders service's events) back to its
# delivery platform, retrying until the platform's deadline, and reports the outcome on
# integrations.events (key ``<integration id>/<external id>``, like order-received), for the
# orders service to record on the order.

ORDER_STATUS_PUSHED = "posint.integrations.order-status-pushed.v1"


class PushOutcome(str, Enum):
    SENT = "sent"
    FAILED = "failed"


class OrderStatusPushed(BaseModel):
    """Event: the platform was told an order's status (``sent``), or could not be told before its
    deadline or refused it (``failed``, with ``error``)."""

    integration_id: PgId
    provider: str
    order_id: PgId = Field(description="The order's id at the orders service.")
    external_id: str
    status: str = Field(description="What the platform was told: accepted, rejected, ready, cancelled or expired.")
    outcome: PushOutcome
    attempts: int
    error: str | None = None
    finished_at: UtcSeconds
