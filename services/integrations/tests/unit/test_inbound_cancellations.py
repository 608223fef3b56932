"""Each inbound adapter tells a platform's cancellation from an order: the custom contract's
``{"external_id", "status": "cancelled", ...}``, Uber Eats ``orders.cancel``, DoorDash
``OrderCancel`` / a ``CANCELLED`` order, Grubhub's ``CANCELLED`` order; anything else is parsed
(or refused) as before."""
from __future__ import annotations

from datetime import datetime, timezone

import pytest

from integrations.adapters.providers import ADAPTERS, Cancellation, InvalidOrder, Parsed
from integrations.adapters.providers.base import cancelled_state, reason_text


@pytest.mark.parametrize("provider, document, headers, expected", [
    ("custom", {"external_id": "web-1", "status": "cancelled", "reason": " rain ", "cancelled_at": "2026-01-04T18:05:00Z"},
     {"webhook-id": "msg_1"}, Cancellation("web-1", "msg_1", "rain", datetime(2026, 1, 4, 18, 5, tzinfo=timezone.utc))),
    ("ubereats", {"event_id": "ev-1", "event_type": "orders.cancel", "meta": {"resource_id": "UE-1"}}, {},
     Cancellation("UE-1", "ev-1", None)),
    ("doordash", {"event": {"type": "OrderCancel"}, "order": {"id": "DD-1", "cancel_reason": "closed"}}, {},
     Cancellation("DD-1", None, "closed")),
    ("doordash", {"event": {"type": "OrderUpdate"}, "order": {"id": "DD-2", "status": "Cancelled"}}, {},
     Cancellation("DD-2", None, None)),
    ("grubhub", {"order": {"id": "GH-1", "status": "CANCELED", "cancel_reason": "x\ny"}}, {},
     Cancellation("GH-1", None, "x y")),
])
def test_a_cancellation_is_parsed(provider, document, headers, expected):
    assert ADAPTERS[provider].parse(document, headers) == expected


@pytest.mark.parametrize("provider, document", [
    ("custom", {"external_id": "web-1", "status": "open"}),
    ("custom", {"external_id": "web 1", "status": "cancelled"}),
    ("custom", {"external_id": "web-1", "status": "cancelled", "reason": "x" * 501}),
    ("custom", {"external_id": "web-1", "status": "cancelled", "cancelled_at": "2026-01-04T18:05:00"}),
    ("ubereats", {"event_id": "ev-1", "event_type": "orders.cancel", "meta": {}}),
    ("doordash", {"event": {"type": "OrderCancel"}, "order": {"id": ""}}),
])
def test_a_malformed_cancellation_is_refused(provider, document):
    with pytest.raises(InvalidOrder):
        ADAPTERS[provider].parse(document, {})


def test_an_order_that_stands_is_still_an_order():
    parsed = ADAPTERS["grubhub"].parse({"order": {
        "id": "GH-2", "status": "CONFIRMED", "time_placed": "2026-01-04T18:00:00Z",
        "fulfillment_info": {"fulfillment_type": "PICKUP"},
        "charges": {"lines": {"line_items": [{"name": "Soup", "quantity": 1, "price": 500}]},
                    "diner_subtotal": 500, "taxes": {"total": 40}, "diner_grand_total": 540}}}, {})
    assert isinstance(parsed, Parsed) and parsed.order.external_id == "GH-2"


def test_the_state_and_reason_helpers():
    assert [cancelled_state(v) for v in ("CANCELLED", "canceled", " Cancelled ", "cancel", None, 1)] == [
        True, True, True, False, False, False]
    assert (reason_text("  "), reason_text(7), reason_text("a\tb"), len(reason_text("r" * 900))) == (None, None, "a b", 500)
