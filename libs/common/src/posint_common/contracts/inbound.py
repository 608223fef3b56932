"""Inbound orders: the normalized order every delivery provider's push is parsed into, the command
that carries a push from the gateway to the integrations service, and the hand-over event the
orders service consumes.

Money is a decimal string (``"12.50"``), never a JSON number: a float cannot hold cents exactly. In
JSON mode these models write every amount back out as a string.
"""
from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from enum import StrEnum
from typing import Annotated, Any

from pydantic import (
    AwareDatetime, Base64Bytes, BaseModel, BeforeValidator, ConfigDict, Field, StrictInt, StringConstraints,
)

from posint_common.contracts.integrations import UtcSeconds
from posint_common.contracts.providers import PRINTABLE, ExternalId, Secret
from posint_common.contracts.types import PgId

RECEIVE_INBOUND_ORDER = "posint.integrations.receive-inbound-order.v1"
ORDER_RECEIVED = "posint.integrations.order-received.v1"

MAX_MONEY = Decimal("10000000")  # per amount: far above any restaurant order, far below overflow


def _decimal_string(value: Any) -> Any:
    """JSON gives money as a string; a number (float or int) is refused rather than rounded. Python
    callers (the provider adapters) may pass a Decimal they computed exactly."""
    if isinstance(value, str) or isinstance(value, Decimal):
        return value
    raise ValueError('must be a decimal string such as "12.50", not a JSON number')


Money = Annotated[
    Decimal, BeforeValidator(_decimal_string),
    Field(ge=0, le=MAX_MONEY, max_digits=12, decimal_places=4, allow_inf_nan=False),
]
Text = Annotated[str, StringConstraints(strip_whitespace=True, max_length=500, pattern=PRINTABLE)]
Label = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200, pattern=PRINTABLE)]
Currency = Annotated[str, StringConstraints(pattern=r"^[A-Z]{3}$")]


class Fulfillment(StrEnum):
    DELIVERY = "delivery"
    PICKUP = "pickup"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Customer(_Strict):
    name: Text | None = None
    phone: Annotated[str, StringConstraints(strip_whitespace=True, max_length=40, pattern=PRINTABLE)] | None = None


class Modifier(_Strict):
    external_id: ExternalId | None = None
    name: Label
    quantity: StrictInt = Field(default=1, ge=1, le=999)
    unit_price: Money = Decimal("0")


class OrderItem(_Strict):
    external_id: ExternalId | None = None
    name: Label
    quantity: StrictInt = Field(ge=1, le=999)
    unit_price: Money
    modifiers: list[Modifier] = Field(default_factory=list, max_length=50)


class NormalizedOrder(_Strict):
    """One order as posint sees it, whatever platform it came from; the ``custom`` provider's
    inbound body is exactly this. Unknown keys are refused, so a typo is a 400, not lost data."""

    external_id: ExternalId = Field(description="The order's id at the platform; unique per integration.")
    placed_at: AwareDatetime = Field(description="When the customer placed it, with a UTC offset.")
    customer: Customer = Field(default_factory=Customer)
    fulfillment: Fulfillment
    items: list[OrderItem] = Field(min_length=1, max_length=200)
    subtotal: Money
    tax: Money
    tip: Money = Decimal("0")
    total: Money
    currency: Currency = Field(description="ISO 4217 code, e.g. USD.")
    notes: Annotated[str, StringConstraints(max_length=2000, pattern=PRINTABLE)] | None = None


# --- Gateway -> integrations (integrations.commands, key = integration id) -----------------------

INBOUND_HEADERS = ("webhook-id", "webhook-timestamp", "webhook-signature", "x-uber-signature", "authorization")
"""The request headers the gateway forwards (lowercase): each provider's signature scheme uses some."""
MAX_HEADER_CHARS = 4096


class ReceiveInboundOrder(BaseModel):
    """Command: one push to ``POST /integrations/{id}/inbound``, untouched. The body is the exact
    bytes received (base64 here), so the signature is checked on what the platform signed; header
    values are hidden from ``repr`` and validation errors (a bearer token may be among them)."""

    model_config = ConfigDict(hide_input_in_errors=True)

    integration_id: PgId
    body: Base64Bytes
    headers: dict[Annotated[str, StringConstraints(max_length=64)], Annotated[Secret, Field(max_length=MAX_HEADER_CHARS)]] = (
        Field(default_factory=dict, max_length=len(INBOUND_HEADERS)))


class InboundReceipt(BaseModel):
    """The body of the 202 (new order) and of the 200 (a repeated delivery, nothing created)."""

    integration_id: PgId
    external_id: str
    status: str = Field(description="'received' (202); 'updated' (200) for a known order sent again with changed "
                                    "content, handed over again; 'cancelled' (202) for the platform's cancellation of "
                                    "a received order, handed over; 'duplicate' (200) for a delivery already received "
                                    "(or an order already cancelled)")
    received_at: UtcSeconds = Field(description="When the order was first received.")


class InboundReceiptDocument(BaseModel):
    data: InboundReceipt


# --- Hand-over event (integrations.events, key = "<integration id>/<external id>") ----------------


class OrderReceived(BaseModel):
    """A new order from a platform, durable at the integrations service. Keyed by the order
    (``<integration id>/<external id>``), so one order's later events stay in order behind it; the
    tenant is the envelope's ``tenantid``. ``raw_data`` is the platform's payload as sent."""

    integration_id: PgId
    provider: str
    external_id: ExternalId
    webhook_id: str | None = None
    received_at: datetime
    order: NormalizedOrder
    raw_data: dict[str, Any]


def order_subject(integration_id: int, external_id: str) -> str:
    """The Kafka key (``ce_subject``) of one order's events."""
    return f"{integration_id}/{external_id}"
