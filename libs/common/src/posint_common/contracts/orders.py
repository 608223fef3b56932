"""Messages of the orders service: the external-order queries and commands the gateway sends, the
order as the API shows it, and the events on ``orders.events`` (key = order id). Every event
carries the tenant, the integration and the order as ``GET /external-orders/{id}`` shows it
(without its history)."""
from __future__ import annotations

from enum import StrEnum
from typing import Annotated, Any

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, StrictInt, StringConstraints

from posint_common.contracts import limits
from posint_common.contracts.inbound import Currency, Customer, Fulfillment, Money, OrderItem
from posint_common.contracts.integrations import PushOutcome, UtcSeconds
from posint_common.contracts.providers import PRINTABLE, ExternalId
from posint_common.contracts.types import PgId

LIST_EXTERNAL_ORDERS = "posint.orders.list-external-orders.v1"
GET_EXTERNAL_ORDER = "posint.orders.get-external-order.v1"
REJECT_EXTERNAL_ORDER = "posint.orders.reject-external-order.v1"
ORDER_CREATED = "posint.orders.order-created.v1"
ORDER_UPDATED = "posint.orders.order-updated.v1"
ORDER_REJECTED = "posint.orders.order-rejected.v1"
ORDER_ACCEPTED = "posint.orders.order-accepted.v1"
ORDER_INJECTED = "posint.orders.order-injected.v1"
ORDER_INJECTION_FAILED = "posint.orders.order-injection-failed.v1"
ORDER_READY = "posint.orders.order-ready.v1"
ORDER_CANCELLED = "posint.orders.order-cancelled.v1"
ORDER_EXPIRED = "posint.orders.order-expired.v1"
ORDER_COMPLETED = "posint.orders.order-completed.v1"
ORDER_FAILED = "posint.orders.order-failed.v1"
PAYMENT_COMPLETED = "posint.orders.payment-completed.v1"
ACCEPT_EXTERNAL_ORDER = "posint.orders.accept-external-order.v1"
RETRY_INJECTION = "posint.orders.retry-injection.v1"
MARK_READY = "posint.orders.mark-ready.v1"
COMPLETE_EXTERNAL_ORDER = "posint.orders.complete-external-order.v1"
CANCEL_EXTERNAL_ORDER = "posint.orders.cancel-external-order.v1"
# The platform cancelled an order (integrations.events, key = "<integration id>/<external id>", like
# the order-received it follows): emitted by the integrations service, consumed by orders.
PLATFORM_ORDER_CANCELLED = "posint.integrations.order-cancelled.v1"

MAX_PAGE_SIZE = 200
DEFAULT_PAGE_SIZE = 100
PAGE_BYTES = limits.ORDER_MAX_BYTES // limits.MAX_CHARACTER_BYTES
"""A page's orders stop at this many characters of JSON (896 Ki; at most 4 bytes each), so the reply
stays inside the broker's record limit (``limits.MAX_RECORD_BYTES``); one order alone, up to
``limits.ORDER_MAX_BYTES``, always fits. A page cut short says so with PAGE_CONTINUES (a reply
header the gateway turns into the next link, never shown)."""
PAGE_CONTINUES = "x-posint-page-continues"


class OrderStatus(StrEnum):
    RECEIVED = "received"
    ACCEPTED = "accepted"
    PREPARING = "preparing"
    READY = "ready"
    PICKED_UP = "picked_up"
    COMPLETED = "completed"
    REJECTED = "rejected"
    EXPIRED = "expired"
    CANCEL_REQUESTED = "cancel_requested"
    CANCELLED = "cancelled"
    FAILED = "failed"


class ChangeSource(StrEnum):
    """Who changed an order: the delivery platform, the restaurant (the API), the integration's
    auto-accept, the acceptance deadline, the POS."""

    PLATFORM = "platform"
    MERCHANT = "merchant"
    AUTO_ACCEPT = "auto_accept"
    TIMER = "timer"
    POS = "pos"


# --- Queries (orders.queries) and commands (orders.commands, key = order id) --------------------


class ListExternalOrders(BaseModel):
    """Query: a page of the tenant's orders, newest first (id descending); ``after_id`` is the last
    id of the previous page, so orders arriving meanwhile never shift a page."""

    limit: int = Field(default=DEFAULT_PAGE_SIZE, ge=1, le=MAX_PAGE_SIZE)
    after_id: PgId | None = None
    integration_id: PgId | None = None
    statuses: list[OrderStatus] | None = Field(default=None, min_length=1, max_length=len(OrderStatus))
    created_after: AwareDatetime | None = None
    created_before: AwareDatetime | None = None


class ExternalOrderRef(BaseModel):
    """Query ``get-external-order``: one order by id (tenant from the envelope)."""

    id: PgId


class RejectReason(StrEnum):
    ITEM_UNAVAILABLE = "ITEM_UNAVAILABLE"
    STORE_CLOSED = "STORE_CLOSED"
    TOO_BUSY = "TOO_BUSY"
    OTHER = "OTHER"


class RejectOrderFields(BaseModel):
    """Body of ``POST /external-orders/{id}/reject``."""

    model_config = ConfigDict(extra="forbid")

    reason_code: RejectReason
    detail: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=500, pattern=PRINTABLE)] | None = None
    unavailable_item_ids: list[ExternalId] | None = Field(default=None, min_length=1, max_length=200)


class RejectExternalOrder(RejectOrderFields):
    """Command: the restaurant rejects a received order."""

    id: PgId


class AcceptOrderFields(BaseModel):
    """Body of ``POST /external-orders/{id}/accept`` (optional): without a prep time the
    integration's ``prep_time_minutes`` applies."""

    model_config = ConfigDict(extra="forbid")

    prep_time_minutes: StrictInt | None = Field(default=None, ge=1, le=180)


class AcceptExternalOrder(AcceptOrderFields):
    """Command: the restaurant accepts a received order; it is injected into the POS."""

    id: PgId


class CancelOrderFields(BaseModel):
    """Body of ``POST /external-orders/{id}/cancel``."""

    model_config = ConfigDict(extra="forbid")

    reason: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=500, pattern=PRINTABLE)]


class CancelExternalOrder(CancelOrderFields):
    id: PgId


class PlatformOrderCancelled(BaseModel):
    """The platform cancelled one of its orders (before acceptance: cancelled; after it:
    cancel_requested until the POS confirms)."""

    integration_id: PgId
    external_id: str
    reason: str | None = None
    cancelled_at: AwareDatetime | None = None


class InjectionStatus(StrEnum):
    PENDING = "pending"
    INJECTED = "injected"
    FAILED = "failed"


# --- The order as the API and the events show it -------------------------------------------------


class ExternalOrder(BaseModel):
    """One order: the contract's fields, the normalized order, and where it stands."""

    id: PgId
    integration_id: PgId
    external_id: str
    status: OrderStatus
    raw_data: dict[str, Any] = Field(description="The platform's payload as it was sent.")
    placed_at: UtcSeconds
    customer: Customer
    fulfillment: Fulfillment
    items: list[OrderItem]
    subtotal: Money
    tax: Money
    tip: Money
    total: Money
    currency: Currency
    notes: str | None = None
    accept_by: UtcSeconds | None = Field(default=None, description="Not accepted by then, the order expires.")
    injection_status: InjectionStatus | None = Field(
        default=None, description="POS injection: null until accepted, then pending, injected or failed.")
    injection_error: str | None = Field(default=None, description="Why the POS refused the order (when failed).")
    pos_order_id: str | None = None
    created_at: UtcSeconds


class StatusChange(BaseModel):
    """One line of an order's history; a platform's update of the content is a line from the order's
    status to the same status."""

    model_config = ConfigDict(populate_by_name=True)

    from_: OrderStatus | None = Field(alias="from")
    to: OrderStatus
    source: ChangeSource
    reason: str | None = None
    at: UtcSeconds


class PlatformSync(BaseModel):
    """The latest report of telling the delivery platform the order's status (the integrations
    service's ``order-status-pushed``): not a status change, so not a history line."""

    status: str = Field(description="What the platform was told: accepted, rejected, ready, cancelled or expired.")
    outcome: PushOutcome = Field(description="sent, or failed (refused, or not delivered before the platform's deadline).")
    attempts: int
    error: str | None = None
    at: UtcSeconds = Field(description="When the push finished.")


class ExternalOrderDetail(ExternalOrder):
    status_history: list[StatusChange] = Field(description="Oldest first.")
    platform_sync: PlatformSync | None = Field(
        default=None, description="The platform's view: the last status update sent back to it and how it ended.")


class ExternalOrderList(BaseModel):
    data: list[ExternalOrder]


class ExternalOrderDocument(BaseModel):
    data: ExternalOrderDetail


class OrderEvent(BaseModel):
    """``order.created`` and ``order.updated``: the order as the API shows it."""

    tenant_id: str
    integration_id: PgId
    order: ExternalOrder


class OrderRejected(OrderEvent):
    """``order.rejected``: the restaurant turned the order down."""

    reason_code: RejectReason
    detail: str | None = None
    unavailable_item_ids: list[str] | None = None
    rejected_at: UtcSeconds



class OrderAccepted(OrderEvent):
    """``order.accepted``: the restaurant (or auto-accept) took the order; the POS injection follows."""

    prep_time_minutes: int
    accepted_at: UtcSeconds


class OrderInjectionFailed(OrderEvent):
    """``order.injection_failed``: the POS refused the order (``POST .../retry-injection`` sends it again)."""

    reason: str


class OrderCancelled(OrderEvent):
    """``order.cancelled``."""

    source: ChangeSource
    reason: str | None = None


class PaymentCompleted(OrderEvent):
    """``payment.completed``: the POS took the payment."""

    amount: Money | None = None
    currency: Currency | None = None
    method: str | None = None
