"""Provider ``ubereats``: Uber Eats order webhooks.

Signature (documented by Uber): ``X-Uber-Signature`` is the lowercase hex HMAC-SHA256 of the raw
body keyed with the app's client secret (``credentials.client_secret``); compared in constant time.
Uber's scheme carries no timestamp, so a replay is caught only as a duplicate (``event_id``,
order id).

Payload, where we had to guess: Uber's ``orders.notification`` event (``event_id``,
``event_type``, ``event_time``, ``meta.resource_id`` = order id, ``meta.user_id`` = store id,
``resource_href``) does not carry the order; Uber expects it to be fetched from ``resource_href``
(the API client comes with sync). Until then the order is taken from an ``order`` member in the
shape of ``GET /v2/eats/order/{id}``: ``id``, ``placed_at``, ``type`` (``PICK_UP`` is pickup,
anything else delivery), ``eater`` {``first_name``, ``last_name``, ``phone``}, ``cart.items``
[{``id``, ``title``, ``quantity``, ``price.unit_price.amount`` in minor units,
``selected_modifier_groups[].selected_items[]``}], ``cart.special_instructions`` and
``payment.charges`` {``sub_total``, ``tax``, ``tip`` (optional), ``total``} as
``{amount, currency_code}``. Amounts are taken as hundredths of the currency.

Cancellation (Uber's documented ``orders.cancel`` webhook): ``event_type`` ``orders.cancel``,
``meta.resource_id`` = the order id; it carries no order (and Uber documents no reason in it, so an
optional top-level ``reason`` is our guess). In the order list a cancelled order has
``current_state`` ``CANCELED`` (Uber's order states).
"""
from __future__ import annotations

import hashlib
import hmac
from datetime import datetime
from typing import Any, Mapping

from pydantic import Field, StrictInt

from posint_common.contracts.inbound import NormalizedOrder

from integrations.adapters.providers.base import (
    Cancellation, InboundAdapter, Keys, Native, Parsed, SignatureError, minor_units, order, reason_text, same, validated,
)

SIGNATURE_HEADER = "x-uber-signature"


def verify(body: bytes, headers: Mapping[str, str], keys: Keys, integration_id: int) -> None:
    secret = keys.credentials.get("client_secret")
    if not secret:
        raise SignatureError("the integration has no client secret")
    expected = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    if not same(expected, headers.get(SIGNATURE_HEADER)):
        raise SignatureError(f"{SIGNATURE_HEADER} missing or not the HMAC of the body")


class Amount(Native):
    amount: StrictInt = Field(ge=0)
    currency_code: str


class Price(Native):
    unit_price: Amount


class SelectedItem(Native):
    id: str | None = None
    title: str
    quantity: StrictInt = 1
    price: Price | None = None


class ModifierGroup(Native):
    selected_items: list[SelectedItem] = Field(default_factory=list, max_length=50)


class Item(Native):
    id: str | None = None
    title: str
    quantity: StrictInt
    price: Price
    selected_modifier_groups: list[ModifierGroup] = Field(default_factory=list, max_length=50)


class Cart(Native):
    items: list[Item] = Field(max_length=200)
    special_instructions: str | None = None


class Charges(Native):
    sub_total: Amount
    tax: Amount
    tip: Amount | None = None
    total: Amount


class Payment(Native):
    charges: Charges


class Eater(Native):
    first_name: str | None = None
    last_name: str | None = None
    phone: str | None = None


class Order(Native):
    id: str
    placed_at: datetime
    type: str = "DELIVERY_BY_UBER"
    eater: Eater = Eater()
    cart: Cart
    payment: Payment


class Notification(Native):
    event_id: str
    event_type: str
    order: Order


CANCEL_EVENT = "orders.cancel"
STATE_KEY = "current_state"  # of an order in the list


class Meta(Native):
    resource_id: str = Field(min_length=1)


class CancelNotification(Native):
    event_id: str
    event_type: str
    meta: Meta
    reason: Any = None


def parse(document: dict[str, Any], headers: Mapping[str, str]) -> Parsed | Cancellation:
    if document.get("event_type") == CANCEL_EVENT:
        cancel: CancelNotification = validated(CancelNotification, document)
        return Cancellation(cancel.meta.resource_id, cancel.event_id, reason_text(cancel.reason))
    event: Notification = validated(Notification, document)
    return Parsed(normalized(event.order), event.event_id)


def normalized(native: Order) -> NormalizedOrder:
    """The normalized form of one validated order (a push's, or one from the order list)."""
    charges = native.payment.charges
    name = " ".join(part for part in (native.eater.first_name, native.eater.last_name) if part) or None
    return order({
        "external_id": native.id,
        "placed_at": native.placed_at,
        "customer": {"name": name, "phone": native.eater.phone},
        "fulfillment": "pickup" if native.type == "PICK_UP" else "delivery",
        "items": [{
            "external_id": item.id, "name": item.title, "quantity": item.quantity,
            "unit_price": minor_units(item.price.unit_price.amount),
            "modifiers": [
                {"external_id": chosen.id, "name": chosen.title, "quantity": chosen.quantity,
                 "unit_price": minor_units(chosen.price.unit_price.amount) if chosen.price else minor_units(0)}
                for group in item.selected_modifier_groups for chosen in group.selected_items
            ],
        } for item in native.cart.items],
        "subtotal": minor_units(charges.sub_total.amount),
        "tax": minor_units(charges.tax.amount),
        "tip": minor_units(charges.tip.amount if charges.tip else 0),
        "total": minor_units(charges.total.amount),
        "currency": charges.total.currency_code,
        "notes": native.cart.special_instructions,
    })


ADAPTER = InboundAdapter(verify=verify, parse=parse)
