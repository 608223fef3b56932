"""The two POS topics: what posint sends a restaurant's POS and what the POS answers.

``pos.orders`` (written by the orders service, read by the POS through its own consumer group):
``inject-order`` (put this accepted order into the POS) and ``cancel-order``. ``pos.order-events``
(written by the POS, read by the orders service, group ``orders.pos``): the POS's answers and the
order's progress in the kitchen. Both keyed by the posint order id (``ce_subject``), CloudEvents
1.0 in Kafka binary mode like every posint topic; the POS copies ``ce_tenantid`` from the command
onto its answers and gives each answer its own ``ce_id`` (posint deduplicates on ``ce_source`` +
``ce_id``, so a redelivered answer is harmless).

An answer that moves an order backwards (``preparing`` after ``ready``) or comes twice changes
nothing; an answer naming an injection attempt other than the latest is kept in the history only.
"""
from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from posint_common.contracts.inbound import Currency, Money, NormalizedOrder
from posint_common.contracts.providers import PRINTABLE
from posint_common.contracts.types import PgId

INJECT_ORDER = "posint.pos.inject-order.v1"
CANCEL_ORDER = "posint.pos.cancel-order.v1"
ORDER_INJECTED = "posint.pos.order-injected.v1"
ORDER_INJECTION_FAILED = "posint.pos.order-injection-failed.v1"
ORDER_PREPARING = "posint.pos.order-preparing.v1"
ORDER_READY = "posint.pos.order-ready.v1"
ORDER_COMPLETED = "posint.pos.order-completed.v1"
ORDER_CANCELLED = "posint.pos.order-cancelled.v1"
PAYMENT_COMPLETED = "posint.pos.payment-completed.v1"

PosText = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=500, pattern=PRINTABLE)]
PosOrderId = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=128, pattern=PRINTABLE)]


# --- pos.orders: posint -> POS --------------------------------------------------------------------


class InjectOrder(BaseModel):
    """Put an accepted order into the POS. ``attempt`` counts injections of this order (1, then 2
    after a retry-injection...): answer with the same number."""

    order_id: PgId = Field(description="posint's order id; also the Kafka key.")
    tenant_id: str
    integration_id: PgId
    provider: str = Field(description="The delivery platform (doordash, ubereats, grubhub, custom).")
    external_id: str = Field(description="The platform's order id.")
    attempt: int = Field(ge=1, le=1000)
    prep_time_minutes: int = Field(ge=1, le=180)
    order: NormalizedOrder


class CancelOrder(BaseModel):
    """The order was cancelled (by the platform: answer ``order-cancelled`` once the kitchen stopped)."""

    order_id: PgId
    tenant_id: str
    reason: str | None = None


# --- pos.order-events: POS -> posint -------------------------------------------------------------


class PosOrderEvent(BaseModel):
    """``order-preparing``, ``order-ready``, ``order-completed``, ``order-cancelled``: the order moved."""

    model_config = ConfigDict(extra="ignore")

    order_id: PgId


class PosOrderInjected(PosOrderEvent):
    pos_order_id: PosOrderId = Field(description="The POS's own order number.")
    attempt: int | None = Field(default=None, ge=1, le=1000, description="The inject-order's attempt.")


class PosOrderInjectionFailed(PosOrderEvent):
    reason: PosText
    attempt: int | None = Field(default=None, ge=1, le=1000)


class PosPaymentCompleted(PosOrderEvent):
    amount: Money | None = None
    currency: Currency | None = None
    method: PosText | None = None
