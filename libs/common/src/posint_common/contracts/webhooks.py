"""Messages of the webhook dispatcher: managing a tenant's webhook endpoints, and the catalog of
events a restaurant can subscribe to (what the dispatcher fans out)."""
from __future__ import annotations

from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StrictBool, model_validator
from pydantic_core import PydanticCustomError

from posint_common.contracts.integrations import DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE, UtcSeconds
from posint_common.contracts.types import PgId

LIST_WEBHOOKS = "posint.webhooks.list-webhooks.v1"
GET_WEBHOOK = "posint.webhooks.get-webhook.v1"
CREATE_WEBHOOK = "posint.webhooks.create-webhook.v1"
UPDATE_WEBHOOK = "posint.webhooks.update-webhook.v1"
DELETE_WEBHOOK = "posint.webhooks.delete-webhook.v1"
TEST_WEBHOOK = "posint.webhooks.test-webhook.v1"  # payload: WebhookRef
TEST_EVENT = "webhook.test"

MAX_URL_CHARS = 2048
SECRET_PREFIX = "whsec_"

_ORDER = {"id": 1042, "integration_id": 7, "external_id": "web-1042", "status": "accepted", "total": "27.82",
          "currency": "USD"}


class EventType(BaseModel):
    name: str
    description: str
    example: dict[str, Any] = Field(description="The webhook body's `data` for this event.")


def _event(name: str, description: str, example: dict[str, Any]) -> tuple[str, EventType]:
    return name, EventType(name=name, description=description, example=example)


CATALOG: dict[str, EventType] = dict((
    _event("order.created", "A new order arrived from a platform.", {**_ORDER, "status": "received"}),
    _event("order.updated", "The platform sent a changed copy of an order.", {**_ORDER, "status": "received"}),
    _event("order.accepted", "The restaurant accepted the order.", _ORDER),
    _event("order.rejected", "The restaurant rejected the order.", {**_ORDER, "status": "rejected"}),
    _event("order.injected", "The POS took the order.", {**_ORDER, "pos_order_id": "POS-881"}),
    _event("order.injection_failed", "The POS refused the order.", {**_ORDER, "reason": "item 'burger' unknown"}),
    _event("order.ready", "The order is ready for pickup.", {**_ORDER, "status": "ready"}),
    _event("order.cancelled", "The order was cancelled.", {**_ORDER, "status": "cancelled"}),
    _event("order.expired", "Nobody accepted the order in time.", {**_ORDER, "status": "expired"}),
    _event("order.completed", "The order was handed over.", {**_ORDER, "status": "completed"}),
    _event("order.failed", "The order could not be processed.", {**_ORDER, "status": "failed"}),
    _event("payment.completed", "The POS recorded the order's payment.", {**_ORDER, "status": "completed"}),
    _event("integration.sync.completed", "An integration's sync finished.",
           {"integration_id": 7, "provider": "quickbooks", "completed_at": "2026-01-04T18:00:00Z"}),
    _event("integration.sync.failed", "An integration's sync failed.",
           {"integration_id": 7, "provider": "quickbooks", "error": "token expired", "failed_at": "2026-01-04T18:00:00Z"}),
    _event("webhook.disabled", "One of your endpoints was disabled after failing too long (or answering 410).",
           {"webhook_id": 3, "url": "https://pos.example.com/hooks", "reason": "failing since 2026-01-01T00:00:00Z"}),
))


def _in_catalog(name: str) -> str:
    if name not in CATALOG:
        raise PydanticCustomError("unknown_event", "unknown event type; valid: {valid}", {"valid": ", ".join(CATALOG)})
    return name


EventName = Annotated[str, AfterValidator(_in_catalog)]
Events = Annotated[list[EventName], Field(min_length=1, max_length=len(CATALOG), description="Event types to receive.")]
Url = Annotated[str, Field(min_length=1, max_length=MAX_URL_CHARS, description="Absolute https URL of the receiver.")]


class CreateWebhook(BaseModel):
    """Command, and the body of ``POST /webhooks``. The URL's scheme and address are judged by the
    dispatcher (its settings say whether plain http is allowed, its egress guard what is blocked)."""

    model_config = ConfigDict(extra="forbid")

    integration_id: PgId
    url: Url
    events: Events


class UpdateWebhookFields(BaseModel):
    """Body of ``PATCH /webhooks/{id}``: at least one field."""

    model_config = ConfigDict(extra="forbid")

    url: Url = Field(default=None)
    events: Events = Field(default=None)
    is_active: StrictBool = Field(default=None)

    @model_validator(mode="after")
    def _something(self) -> "UpdateWebhookFields":
        if not self.model_fields_set:
            raise PydanticCustomError("empty_update", "give at least one of url, events, is_active")
        return self


class UpdateWebhook(UpdateWebhookFields):
    id: PgId


class WebhookRef(BaseModel):
    id: PgId


class ListWebhooks(BaseModel):
    limit: int = Field(default=DEFAULT_PAGE_SIZE, ge=1, le=MAX_PAGE_SIZE)
    after_id: PgId | None = None


class WebhookView(BaseModel):
    id: PgId
    integration_id: PgId
    url: str
    events: list[str]
    is_active: bool
    created_at: UtcSeconds


class NewWebhook(WebhookView):
    secret: str = Field(description="Signing secret: 'whsec_' + base64 of 32 random bytes. Shown only here.")


class WebhookDocument(BaseModel):
    data: WebhookView


class NewWebhookDocument(BaseModel):
    data: NewWebhook


class WebhookList(BaseModel):
    data: list[WebhookView]


class EventTypeList(BaseModel):
    data: list[EventType]


class DeliveryAttempt(BaseModel):
    """One attempt to deliver a message to an endpoint, as the receiver answered it."""

    message_id: str = Field(description="The webhook-id header: the same across retries of one message.")
    event_type: str
    success: bool
    outcome: str = Field(description="success, http_error, timeout, connect_error or ssrf_blocked")
    status_code: int | None = None
    latency_ms: float
    error: str | None = None
    response_body: str | None = Field(default=None, description="The first 1 KiB of the receiver's answer.")
    attempted_at: UtcSeconds


class DeliveryAttemptDocument(BaseModel):
    data: DeliveryAttempt
