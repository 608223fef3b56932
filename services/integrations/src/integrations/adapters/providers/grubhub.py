"""Provider ``grubhub``: Grubhub order webhooks.

Authentication, where we had to guess: Grubhub lets a partner choose basic auth, HMAC or JWT for
its webhooks and recommends HMAC, in the form of its API's MAC scheme (IETF HTTP MAC draft):
``Authorization: MAC id="<client id>",nonce="<nonce>",bodyhash="<base64 SHA-256 of the body>",mac="<mac>"``.
We check ``id`` against ``credentials.client_id`` (a ``sv:v1:`` prefix allowed), ``bodyhash``
against the exact body, and ``mac`` = base64 HMAC-SHA256, keyed with ``credentials.secret_key``
(its UTF-8 bytes), of ``"<nonce>\\nPOST\\n<path>\\n<bodyhash>\\n"`` where ``<path>`` is
``/api/v1/integrations/<id>/inbound``. The draft's host and port lines are left out: the address
Grubhub calls is the gateway's public one, which this service does not know. Comparisons are
constant-time. No timestamp: a replay is caught only as a duplicate order id.

Payload (Grubhub's documented webhook example, amounts guessed as cents): ``{"order": {"id",
"time_placed", "diner_info": {"name", "phone"}, "fulfillment_info": {"fulfillment_type":
"DELIVERY"|"PICKUP"}, "charges": {"lines": {"line_items": [{"id", "name", "quantity", "price",
"options": [{"id", "name", "quantity", "price"}]}]}, "diner_subtotal", "taxes": {"total"},
"tip": {"amount"}, "diner_grand_total"}, "currency" (optional, USD), "special_instructions"}}``.

Cancellation, guessed: an order whose ``status`` is ``CANCELLED`` (``{"order": {"id", "status":
"CANCELLED", "cancel_reason"?}}``; the rest of the order may be left out), also in the order list.
"""
from __future__ import annotations

import base64
import hashlib
import hmac
import re
from datetime import datetime
from typing import Any, Mapping

from pydantic import Field, StrictInt

from posint_common.contracts.inbound import NormalizedOrder

from integrations.adapters.providers.base import (
    Cancellation, InboundAdapter, Keys, Native, Parsed, SignatureError, cancelled_state, minor_units, order, reason_text,
    same, validated,
)

MAC_PARAM = re.compile(r'(\w+)="([^"]*)"')
INBOUND_PATH = "/api/v1/integrations/{id}/inbound"


def _bodyhash(body: bytes) -> str:
    return base64.b64encode(hashlib.sha256(body).digest()).decode()


def _mac(secret_key: str, nonce: str, bodyhash: str, integration_id: int) -> str:
    normalized = f"{nonce}\nPOST\n{INBOUND_PATH.format(id=integration_id)}\n{bodyhash}\n"
    return base64.b64encode(hmac.new(secret_key.encode(), normalized.encode(), hashlib.sha256).digest()).decode()


def mac_header(client_id: str, secret_key: str, nonce: str, body: bytes, integration_id: int) -> str:
    """The header Grubhub sends, as we understand it (also what tests and the sandbox sign with)."""
    bodyhash = _bodyhash(body)
    return f'MAC id="{client_id}",nonce="{nonce}",bodyhash="{bodyhash}",mac="{_mac(secret_key, nonce, bodyhash, integration_id)}"'


def verify(body: bytes, headers: Mapping[str, str], keys: Keys, integration_id: int) -> None:
    client_id, secret_key = keys.credentials.get("client_id"), keys.credentials.get("secret_key")
    if not client_id or not secret_key:
        raise SignatureError("the integration has no client id or secret key")
    scheme, _, rest = (headers.get("authorization") or "").partition(" ")
    params = dict(MAC_PARAM.findall(rest))
    if scheme != "MAC" or not {"id", "nonce", "bodyhash", "mac"} <= params.keys():
        raise SignatureError("authorization is not a MAC header with id, nonce, bodyhash and mac")
    bodyhash = _bodyhash(body)
    matches = (same(client_id, params["id"].removeprefix("sv:v1:")) & same(bodyhash, params["bodyhash"])
               & same(_mac(secret_key, params["nonce"], bodyhash, integration_id), params["mac"]))
    if not matches:
        raise SignatureError("MAC id, body hash or mac does not match")


class Option(Native):
    id: str | None = None
    name: str
    quantity: StrictInt = 1
    price: StrictInt = Field(default=0, ge=0)


class LineItem(Native):
    id: str | None = None
    name: str
    quantity: StrictInt
    price: StrictInt = Field(ge=0)
    options: list[Option] = Field(default_factory=list, max_length=50)


class Lines(Native):
    line_items: list[LineItem] = Field(max_length=200)


class Taxes(Native):
    total: StrictInt = Field(ge=0)


class Tip(Native):
    amount: StrictInt = Field(ge=0)


class Charges(Native):
    lines: Lines
    diner_subtotal: StrictInt = Field(ge=0)
    taxes: Taxes
    tip: Tip = Tip(amount=0)
    diner_grand_total: StrictInt = Field(ge=0)


class Diner(Native):
    name: str | None = None
    phone: str | None = None


class Fulfillment(Native):
    fulfillment_type: str


class Order(Native):
    id: str
    time_placed: datetime
    diner_info: Diner = Diner()
    fulfillment_info: Fulfillment
    charges: Charges
    currency: str = "USD"
    special_instructions: str | None = None


class Push(Native):
    order: Order


STATE_KEY = "status"  # of an order, pushed or listed ("CANCELLED"; its reason in cancel_reason)


class CancelledOrder(Native):
    id: str = Field(min_length=1)
    cancel_reason: Any = None


class CancelPush(Native):
    order: CancelledOrder


def parse(document: dict[str, Any], headers: Mapping[str, str]) -> Parsed | Cancellation:
    native = document.get("order")
    if isinstance(native, dict) and cancelled_state(native.get(STATE_KEY)):
        cancelled = validated(CancelPush, document).order
        return Cancellation(cancelled.id, None, reason_text(cancelled.cancel_reason))
    return Parsed(normalized(validated(Push, document).order), None)


def normalized(native: Order) -> NormalizedOrder:
    """The normalized form of one validated order (a push's, or one from the order list)."""
    charges = native.charges
    return order({
        "external_id": native.id,
        "placed_at": native.time_placed,
        "customer": {"name": native.diner_info.name, "phone": native.diner_info.phone},
        "fulfillment": "pickup" if native.fulfillment_info.fulfillment_type == "PICKUP" else "delivery",
        "items": [{
            "external_id": item.id, "name": item.name, "quantity": item.quantity, "unit_price": minor_units(item.price),
            "modifiers": [{"external_id": option.id, "name": option.name, "quantity": option.quantity,
                           "unit_price": minor_units(option.price)} for option in item.options],
        } for item in charges.lines.line_items],
        "subtotal": minor_units(charges.diner_subtotal),
        "tax": minor_units(charges.taxes.total),
        "tip": minor_units(charges.tip.amount),
        "total": minor_units(charges.diner_grand_total),
        "currency": native.currency,
        "notes": native.special_instructions,
    })


ADAPTER = InboundAdapter(verify=verify, parse=parse)
