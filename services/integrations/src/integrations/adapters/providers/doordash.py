"""Provider ``doordash``: DoorDash Marketplace order webhooks.

Authentication (DoorDash's documentation): a Marketplace webhook carries the auth token the
merchant's developer configured for the endpoint in the DoorDash Developer Portal, in the
``Authorization`` header. The token to configure is the integration's ``inbound_secret``, sent as
``Authorization: Bearer <inbound_secret>`` (our guess at the exact form; compared in constant
time). DoorDash does not sign the body or send a timestamp: the token over TLS is all, and a
replay is caught only as a duplicate order id.

Payload, where we had to guess: ``{"event": {"type": "OrderCreate"}, "order": {...}}`` with
``order.id``, ``order.created_at`` (ISO 8601), ``order.is_pickup``, ``order.consumer``
{``first_name``, ``last_name``, ``phone``}, ``order.categories[].items[]`` {``merchant_supplied_id``,
``name``, ``quantity``, ``price`` in cents, ``extras[].options[]`` with the same fields},
``order.subtotal``, ``order.tax``, ``order.tip_amount`` (optional), ``order.total`` (optional: the sum
of the three), ``order.currency`` (optional, ``USD``) and ``order.special_instructions``.

Cancellation, guessed: ``{"event": {"type": "OrderCancel"}, "order": {"id", "cancel_reason"?}}``, or
an order whose ``status`` is ``CANCELLED`` (also how the order list shows a cancelled order).
"""
from __future__ import annotations

from datetime import datetime
from typing import Any, Mapping

from pydantic import Field, StrictBool, StrictInt

from posint_common.contracts.inbound import NormalizedOrder

from integrations.adapters.providers.base import (
    Cancellation, InboundAdapter, Keys, Native, Parsed, SignatureError, cancelled_state, minor_units, order, reason_text,
    same, validated,
)


def verify(body: bytes, headers: Mapping[str, str], keys: Keys, integration_id: int) -> None:
    if not keys.inbound_secret:
        raise SignatureError("the integration has no inbound secret")
    if not same(f"Bearer {keys.inbound_secret}", headers.get("authorization")):
        raise SignatureError("authorization missing or not the integration's token")


class Option(Native):
    merchant_supplied_id: str | None = None
    name: str
    quantity: StrictInt = 1
    price: StrictInt = Field(default=0, ge=0)


class Extra(Native):
    options: list[Option] = Field(default_factory=list, max_length=50)


class Item(Native):
    merchant_supplied_id: str | None = None
    name: str
    quantity: StrictInt
    price: StrictInt = Field(ge=0)
    extras: list[Extra] = Field(default_factory=list, max_length=50)


class Category(Native):
    items: list[Item] = Field(max_length=200)


class Consumer(Native):
    first_name: str | None = None
    last_name: str | None = None
    phone: str | None = None


class Order(Native):
    id: str
    created_at: datetime
    is_pickup: StrictBool = False
    consumer: Consumer = Consumer()
    categories: list[Category] = Field(max_length=200)
    subtotal: StrictInt = Field(ge=0)
    tax: StrictInt = Field(ge=0)
    tip_amount: StrictInt = Field(default=0, ge=0)
    total: StrictInt | None = Field(default=None, ge=0)
    currency: str = "USD"
    special_instructions: str | None = None


class Push(Native):
    order: Order


CANCEL_EVENT = "OrderCancel"
STATE_KEY = "status"  # of an order, pushed or listed ("CANCELLED"; its reason in cancel_reason)


class CancelledOrder(Native):
    id: str = Field(min_length=1)
    cancel_reason: Any = None


class CancelPush(Native):
    order: CancelledOrder


def parse(document: dict[str, Any], headers: Mapping[str, str]) -> Parsed | Cancellation:
    native, event = document.get("order"), document.get("event")
    cancel_event = isinstance(event, dict) and event.get("type") == CANCEL_EVENT
    if isinstance(native, dict) and (cancel_event or cancelled_state(native.get(STATE_KEY))):
        cancelled = validated(CancelPush, document).order
        return Cancellation(cancelled.id, None, reason_text(cancelled.cancel_reason))
    return Parsed(normalized(validated(Push, document).order), None)


def normalized(native: Order) -> NormalizedOrder:
    """The normalized form of one validated order (a push's, or one from the order list)."""
    name = " ".join(part for part in (native.consumer.first_name, native.consumer.last_name) if part) or None
    total = native.total if native.total is not None else native.subtotal + native.tax + native.tip_amount
    return order({
        "external_id": native.id,
        "placed_at": native.created_at,
        "customer": {"name": name, "phone": native.consumer.phone},
        "fulfillment": "pickup" if native.is_pickup else "delivery",
        "items": [{
            "external_id": item.merchant_supplied_id, "name": item.name, "quantity": item.quantity,
            "unit_price": minor_units(item.price),
            "modifiers": [{"external_id": option.merchant_supplied_id, "name": option.name,
                           "quantity": option.quantity, "unit_price": minor_units(option.price)}
                          for extra in item.extras for option in extra.options],
        } for category in native.categories for item in category.items],
        "subtotal": minor_units(native.subtotal),
        "tax": minor_units(native.tax),
        "tip": minor_units(native.tip_amount),
        "total": minor_units(total),
        "currency": native.currency,
        "notes": native.special_instructions,
    })


ADAPTER = InboundAdapter(verify=verify, parse=parse)
