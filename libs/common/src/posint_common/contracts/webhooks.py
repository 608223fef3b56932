"""Messages of the webhook dispatcher: managing a tenant's webhook endpoints, and the catalog of
events a restaurant can subscribe to (what the dispatcher fans out)."""
from __future__ import annotations

from typing import Annotated, Any

from pydantic import AfterValidator, AwareDatetime, BaseModel, ConfigDict, Field, StrictBool, model_validator
from pydantic_core import PydanticCustomError

from posint_common.contracts.integrations import DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE, UtcSeconds
from posint_common.contracts.types import PgId

LIST_WEBHOOKS = "posint.webhooks.list-webhooks.v1"
GET_WEBHOOK = "posint.webhooks.get-webhook.v1"
CREATE_WEBHOOK = "posint.webhooks.create-webhook.v1"
UPDATE_WEBHOOK = "posint.webhooks.update-webhook.v1"
DELETE_WEBHOOK = "posint.webhooks.delete-webhook.v1"
TEST_WEBHOOK = "posint.webhooks.test-webhook.v1"  # payload: WebhookRef
ROTATE_SECRET = "posint.webhooks.rotate-secret.v1"  # payload: WebhookRef
LIST_DELIVERIES = "posint.webhooks.list-deliveries.v1"
RETRY_DELIVERY = "posint.webhooks.retry-delivery.v1"
RECOVER_WEBHOOK = "posint.webhooks.recover-webhook.v1"
TEST_EVENT = "webhook.test"
DISABLED_EVENT = "webhook.disabled"

# The one table from the CloudEvents types the dispatcher consumes to the catalog's webhook names;
# any other type on those topics is not a webhook and is ignored.
EVENT_NAMES: dict[str, str] = {
    "posint.orders.order-created.v1": "order.created",
    "posint.orders.order-updated.v1": "order.updated",
    "posint.orders.order-accepted.v1": "order.accepted",
    "posint.orders.order-rejected.v1": "order.rejected",
    "posint.orders.order-injected.v1": "order.injected",
    "posint.orders.order-injection-failed.v1": "order.injection_failed",
    "posint.orders.order-ready.v1": "order.ready",
    "posint.orders.order-cancelled.v1": "order.cancelled",
    "posint.orders.order-expired.v1": "order.expired",
    "posint.orders.order-completed.v1": "order.completed",
    "posint.orders.order-failed.v1": "order.failed",
    "posint.orders.payment-completed.v1": "payment.completed",
    "posint.integrations.sync-completed.v1": "integration.sync.completed",
    "posint.integrations.sync-failed.v1": "integration.sync.failed",
}

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


class FannedOutEvent(BaseModel):
    """What the dispatcher needs of any event it fans out: the integration (to match endpoints) and,
    where the envelope lacks it, the tenant. Everything else is passed on to the receiver."""

    model_config = ConfigDict(extra="allow")

    integration_id: PgId
    tenant_id: str | None = None


def webhook_data(payload: dict[str, Any]) -> dict[str, Any]:
    """A webhook body's ``data`` from an event's payload: an order event's order as the API shows it
    plus the event's own fields (``reason``, ``accepted_at`` ...); any other event's payload as it
    is. The tenant is never shown (the receiver is the tenant)."""
    rest = {name: value for name, value in payload.items() if name not in ("tenant_id", "order")}
    if isinstance(payload.get("order"), dict):
        rest.pop("integration_id", None)
        return {**payload["order"], **rest}
    return rest


class NewSecret(BaseModel):
    id: PgId
    secret: str = Field(description="The new signing secret ('whsec_' + base64 of 32 random bytes). Shown only here.")
    previous_secret_expires_at: UtcSeconds = Field(
        description="Until then every message carries signatures with both the new and the previous secret.")


class NewSecretDocument(BaseModel):
    data: NewSecret


class ListDeliveries(BaseModel):
    """Query: a page of an endpoint's delivery attempts, newest first."""

    id: PgId
    limit: int = Field(default=DEFAULT_PAGE_SIZE, ge=1, le=MAX_PAGE_SIZE)
    after_id: PgId | None = None


MessageId = Annotated[str, Field(pattern=r"^msg_[A-Za-z0-9]{1,64}$", description="A message's webhook-id.")]


class DeliveryRef(BaseModel):
    """Command ``retry-delivery``: send one message to the endpoint again now."""

    id: PgId
    message_id: MessageId


class RecoverFields(BaseModel):
    """Body of ``POST /webhooks/{id}/recover``."""

    model_config = ConfigDict(extra="forbid")

    since: AwareDatetime = Field(description="Every message created since then that failed is sent again.")


class RecoverWebhook(RecoverFields):
    id: PgId


class Delivery(BaseModel):
    """One attempt in an endpoint's delivery log."""

    id: PgId = Field(description="The attempt's id (the cursor of the next page).")
    message_id: str
    event_type: str
    attempt: int = Field(description="1 for the first attempt of the message, 2 for its first retry ...")
    attempted_at: UtcSeconds
    outcome: str = Field(description="success, http_error, timeout, connect_error, ssrf_blocked or secret_unavailable "
                                     "(the endpoint's secret no longer decrypts: the message failed without a request)")
    status_code: int | None = None
    latency_ms: float
    error: str | None = None
    response_body: str | None = Field(default=None, description="The first 1 KiB of the receiver's answer.")


class DeliveryList(BaseModel):
    data: list[Delivery]


class Resend(BaseModel):
    message_id: str
    status: str = Field(description="pending: the message is sent again now")


class ResendDocument(BaseModel):
    data: Resend


class Recovery(BaseModel):
    id: PgId
    webhook_id: PgId
    since: UtcSeconds
    messages: int = Field(description="Failed messages since then, sent again in batches from now on.")


class RecoveryDocument(BaseModel):
    data: Recovery
