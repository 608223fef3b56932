"""Sample orders for the demo and tests, one neutral shape (amounts in cents) that each fake
platform writes in its own native form."""
from __future__ import annotations

import itertools
import random
from dataclasses import dataclass, field
from datetime import datetime, timezone

MENU = (("burger", "Burger", 1099), ("fries", "Fries", 399), ("salad", "Caesar Salad", 849),
        ("pizza", "Margherita Pizza", 1450), ("soda", "Soda", 250), ("shake", "Milkshake", 575))
MODIFIERS = (("cheese", "Extra cheese", 50), ("bacon", "Bacon", 150), ("spicy", "Spicy", 0))
NAMES = (("Ada", "Lovelace"), ("Grace", "Hopper"), ("Alan", "Turing"), ("Edsger", "Dijkstra"))
TAX_RATE_PERCENT = 8


@dataclass(frozen=True)
class Modifier:
    id: str
    name: str
    price: int  # cents
    quantity: int = 1


@dataclass(frozen=True)
class Item:
    id: str
    name: str
    quantity: int
    price: int  # cents, per unit, modifiers not included
    modifiers: tuple[Modifier, ...] = ()


@dataclass(frozen=True)
class Sample:
    """One order, platform-neutral. ``subtotal`` counts the items with their modifiers."""

    id: str
    placed_at: datetime
    first_name: str
    last_name: str
    phone: str
    pickup: bool
    items: tuple[Item, ...]
    tip: int
    notes: str | None = None
    currency: str = "USD"
    extra: dict = field(default_factory=dict)

    @property
    def subtotal(self) -> int:
        return sum((item.price + sum(m.price * m.quantity for m in item.modifiers)) * item.quantity for item in self.items)

    @property
    def tax(self) -> int:
        return self.subtotal * TAX_RATE_PERCENT // 100

    @property
    def total(self) -> int:
        return self.subtotal + self.tax + self.tip


_counter = itertools.count(1)


def sample_order(prefix: str = "ORD", *, seed: int | None = None, order_id: str | None = None,
                 placed_at: datetime | None = None) -> Sample:
    """A plausible order; ``seed`` makes it repeatable, ``order_id`` names it."""
    rng = random.Random(seed)
    number = next(_counter)
    picks = rng.sample(MENU, rng.randint(1, 3))
    items = tuple(
        Item(item_id, name, rng.randint(1, 3), price,
             tuple(Modifier(*modifier) for modifier in rng.sample(MODIFIERS, rng.randint(0, 1))) if item_id == "burger" else ())
        for item_id, name, price in picks
    )
    first, last = rng.choice(NAMES)
    return Sample(
        id=order_id or f"{prefix}-{rng.randint(10_000, 99_999)}-{number}",
        placed_at=(placed_at or datetime.now(timezone.utc)).replace(microsecond=0),
        first_name=first, last_name=last, phone=f"+1555010{rng.randint(0, 9)}",
        pickup=rng.random() < 0.3, items=items, tip=rng.choice((0, 200, 300, 500)),
        notes=rng.choice((None, "ring twice", "no onions")),
    )


def decimal_text(cents: int) -> str:
    return f"{cents // 100}.{cents % 100:02d}"


def iso(moment: datetime) -> str:
    return moment.astimezone(timezone.utc).isoformat().replace("+00:00", "Z")


# --- Each platform's native shape (what its API lists and its webhooks carry) ----------------------


def doordash(sample: Sample) -> dict:
    return {"id": sample.id, "created_at": iso(sample.placed_at), "is_pickup": sample.pickup,
            "consumer": {"first_name": sample.first_name, "last_name": sample.last_name, "phone": sample.phone},
            "categories": [{"items": [
                {"merchant_supplied_id": item.id, "name": item.name, "quantity": item.quantity, "price": item.price,
                 "extras": [{"options": [{"merchant_supplied_id": m.id, "name": m.name, "quantity": m.quantity,
                                          "price": m.price} for m in item.modifiers]}] if item.modifiers else []}
                for item in sample.items]}],
            "subtotal": sample.subtotal, "tax": sample.tax, "tip_amount": sample.tip, "total": sample.total,
            "currency": sample.currency, "special_instructions": sample.notes}


def ubereats(sample: Sample) -> dict:
    def money(cents: int) -> dict:
        return {"amount": cents, "currency_code": sample.currency}

    return {"id": sample.id, "placed_at": iso(sample.placed_at), "type": "PICK_UP" if sample.pickup else "DELIVERY_BY_UBER",
            "eater": {"first_name": sample.first_name, "last_name": sample.last_name, "phone": sample.phone},
            "cart": {"items": [
                {"id": item.id, "title": item.name, "quantity": item.quantity, "price": {"unit_price": money(item.price)},
                 "selected_modifier_groups": [{"selected_items": [
                     {"id": m.id, "title": m.name, "quantity": m.quantity, "price": {"unit_price": money(m.price)}}
                     for m in item.modifiers]}] if item.modifiers else []}
                for item in sample.items], "special_instructions": sample.notes},
            "payment": {"charges": {"sub_total": money(sample.subtotal), "tax": money(sample.tax),
                                    "tip": money(sample.tip), "total": money(sample.total)}}}


def grubhub(sample: Sample) -> dict:
    return {"id": sample.id, "time_placed": iso(sample.placed_at),
            "diner_info": {"name": f"{sample.first_name} {sample.last_name}", "phone": sample.phone},
            "fulfillment_info": {"fulfillment_type": "PICKUP" if sample.pickup else "DELIVERY"},
            "charges": {"lines": {"line_items": [
                {"id": item.id, "name": item.name, "quantity": item.quantity, "price": item.price,
                 "options": [{"id": m.id, "name": m.name, "quantity": m.quantity, "price": m.price}
                             for m in item.modifiers]} for item in sample.items]},
                "diner_subtotal": sample.subtotal, "taxes": {"total": sample.tax}, "tip": {"amount": sample.tip},
                "diner_grand_total": sample.total},
            "currency": sample.currency, "special_instructions": sample.notes}


def custom(sample: Sample) -> dict:
    """posint's own normalized order (money as decimal strings)."""
    document = {"external_id": sample.id, "placed_at": iso(sample.placed_at),
                "customer": {"name": f"{sample.first_name} {sample.last_name}", "phone": sample.phone},
                "fulfillment": "pickup" if sample.pickup else "delivery",
                "items": [{"external_id": item.id, "name": item.name, "quantity": item.quantity,
                           "unit_price": decimal_text(item.price),
                           "modifiers": [{"external_id": m.id, "name": m.name, "quantity": m.quantity,
                                          "unit_price": decimal_text(m.price)} for m in item.modifiers]}
                          for item in sample.items],
                "subtotal": decimal_text(sample.subtotal), "tax": decimal_text(sample.tax),
                "tip": decimal_text(sample.tip), "total": decimal_text(sample.total), "currency": sample.currency}
    if sample.notes:
        document["notes"] = sample.notes
    return document


NATIVE = {"doordash": doordash, "ubereats": ubereats, "grubhub": grubhub, "custom": custom}
