"""Inbound adapters without I/O: each provider's signature check on exact bytes, each native payload
parsed into the normalized order with exact money, and the body checks every push goes through."""
from __future__ import annotations

import hashlib
import hmac
import json
from datetime import datetime, timedelta, timezone
from decimal import Decimal

import pytest
from pydantic import ValidationError
from standardwebhooks import Webhook

from integrations.adapters.providers import ADAPTERS, InvalidOrder, Keys, SignatureError
from integrations.adapters.providers.grubhub import mac_header
from integrations.service_layer.inbound import parse_document
from posint_common.contracts.inbound import NormalizedOrder

SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSwMfKQ9r8GKYo="
ORDER = {"external_id": "o-1", "placed_at": "2026-01-04T18:00:00+01:00", "fulfillment": "pickup",
         "items": [{"name": "Tea", "quantity": 3, "unit_price": "0.10"}],
         "subtotal": "0.30", "tax": "0.02", "total": "0.32", "currency": "EUR"}


def standard(body: bytes, at: datetime | None = None, secret: str = SECRET) -> dict:
    at = at or datetime.now(timezone.utc)
    return {"webhook-id": "msg_1", "webhook-timestamp": str(int(at.timestamp())),
            "webhook-signature": Webhook(secret).sign("msg_1", at, body.decode())}


def test_money_is_an_exact_decimal_string_never_a_number():
    parsed = NormalizedOrder.model_validate(ORDER)
    assert parsed.subtotal == Decimal("0.30") and sum(i.unit_price * i.quantity for i in parsed.items) == parsed.subtotal
    assert json.loads(parsed.model_dump_json())["total"] == "0.32"
    for bad in (0.32, 32, True, "NaN", "Infinity", "-1", "1e9", "0.00001"):
        with pytest.raises(ValidationError):
            NormalizedOrder.model_validate({**ORDER, "total": bad})


def test_custom_verifies_standard_webhooks_on_the_exact_bytes():
    verify = ADAPTERS["custom"].verify
    body = json.dumps(ORDER).encode()
    verify(body, standard(body), Keys(inbound_secret=SECRET), 1)
    for headers, sent in ((standard(body), body + b" "),
                          (standard(body, datetime.now(timezone.utc) - timedelta(minutes=6)), body),
                          (standard(body, secret="whsec_" + "A" * 44), body),
                          ({**standard(body), "webhook-signature": "v1,!!!"}, body),
                          ({}, body)):
        with pytest.raises(SignatureError):
            verify(sent, headers, Keys(inbound_secret=SECRET), 1)
    with pytest.raises(SignatureError):
        verify(body, standard(body), Keys(), 1)  # no secret: nothing verifies


def test_ubereats_hex_hmac_of_the_body():
    body = b'{"a": 1}'
    keys = Keys(credentials={"client_secret": "cs"})
    ADAPTERS["ubereats"].verify(body, {"x-uber-signature": hmac.new(b"cs", body, hashlib.sha256).hexdigest()}, keys, 1)
    with pytest.raises(SignatureError):
        ADAPTERS["ubereats"].verify(body, {"x-uber-signature": hmac.new(b"cx", body, hashlib.sha256).hexdigest()}, keys, 1)
    with pytest.raises(SignatureError):
        ADAPTERS["ubereats"].verify(body, {"x-uber-signature": "é"}, keys, 1)  # non-ASCII compares, never raises TypeError


def test_grubhub_mac_is_bound_to_the_integration_path():
    body, keys = b"{}", Keys(credentials={"client_id": "c", "secret_key": "s"})
    ADAPTERS["grubhub"].verify(body, {"authorization": mac_header("sv:v1:c", "s", "n", body, 7)}, keys, 7)
    with pytest.raises(SignatureError):
        ADAPTERS["grubhub"].verify(body, {"authorization": mac_header("c", "s", "n", body, 7)}, keys, 8)


def test_custom_parse_refuses_unknown_keys_and_names_the_field():
    with pytest.raises(InvalidOrder) as caught:
        ADAPTERS["custom"].parse({**ORDER, "totl": "1"}, {})
    assert [error.field for error in caught.value.errors] == ["totl"]


@pytest.mark.parametrize("body, says", [
    (b"{", "not valid JSON"), (b"[]", "JSON object"), (b'{"a": NaN}', "not valid JSON"),
    (b'{"a": 1e999}', "out of range"), (b'{"a": ["\\u0000"]}', "NUL"), (b'{"\\ud800": 1}', "surrogate"),
    (b"\xef\xbb\xbf{}", "not valid JSON"), (b"[" * 100_000 + b"]" * 100_000, "not valid JSON"),
    (b'{"a": ' + b"[" * 500 + b"]" * 500 + b"}", "nested deeper than"),  # fine for json, not for a handler's stack
])
def test_every_body_is_a_storable_json_object(body, says):
    with pytest.raises(InvalidOrder) as caught:
        parse_document(body)
    assert says in caught.value.detail
