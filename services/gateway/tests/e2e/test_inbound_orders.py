"""Signed inbound orders end to end: POST /api/v1/integrations/{id}/inbound (no API key) through the
real gateway, broker, integrations service and Postgres, and the order-received hand-over event."""
from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
import uuid
from datetime import datetime, timedelta, timezone

import pytest
from standardwebhooks import Webhook

from gateway.http.endpoints import INBOUND_MAX_BYTES
from gateway.tenants import create_tenant
from integrations.adapters.providers.grubhub import mac_header
from posint_common.contracts import inbound as contract, topics
from posint_common.testing import Tenant, read_topic, unique


CREDENTIALS = {
    "custom": {},
    "ubereats": {"client_id": "ue-client", "client_secret": "ue-client-secret-1"},
    "doordash": {"developer_id": "dd-dev", "key_id": "dd-kid", "signing_secret": "dd-sign"},
    "grubhub": {"client_id": "gh-client", "secret_key": "gh-secret-key-1"},
}
CONFIG = {"custom": {}, "ubereats": {"store_id": "ue-1"}, "doordash": {"store_id": "dd-1"}, "grubhub": {"merchant_id": "gh-1"}}


def order(external_id: str | None = None, **changes) -> dict:
    document = {
        "external_id": external_id or f"ord-{uuid.uuid4().hex[:8]}",
        "placed_at": "2026-01-04T18:00:00Z",
        "customer": {"name": "Ada", "phone": "+15550100"},
        "fulfillment": "delivery",
        "items": [{"external_id": "burger", "name": "Burger", "quantity": 2, "unit_price": "10.99",
                   "modifiers": [{"name": "Cheese", "unit_price": "0.50"}]}],
        "subtotal": "22.98", "tax": "1.84", "tip": "3.00", "total": "27.82", "currency": "USD", "notes": "ring twice",
    }
    document.update(changes)
    return document


def encode(document) -> bytes:
    return json.dumps(document).encode()


def signed(secret: str, body: bytes, msg_id: str | None = None, at: datetime | None = None) -> dict:
    """Standard Webhooks headers, as a ``custom`` platform sends them."""
    msg_id = msg_id or f"msg_{uuid.uuid4().hex}"
    at = at or datetime.now(timezone.utc)
    return {"webhook-id": msg_id, "webhook-timestamp": str(int(at.timestamp())),
            "webhook-signature": Webhook(secret).sign(msg_id, at, body.decode())}


def other_secret() -> str:
    return "whsec_" + base64.b64encode(uuid.uuid4().bytes * 2).decode()


@pytest.fixture
async def tenant(gateway_service, integrations_service) -> Tenant:
    return Tenant(*await create_tenant(gateway_service.pool, unique("inbound")))


async def create(api, tenant: Tenant, provider: str) -> dict:
    document = {"name": provider, "integration_type": "delivery", "provider": provider,
                "config": CONFIG[provider], "credentials": CREDENTIALS[provider]}
    async with api.post("/api/v1/integrations", json=document, headers={"Authorization": f"Bearer {tenant.key}"}) as response:
        assert response.status == 201, await response.text()
        return (await response.json())["data"]


async def push(api, integration_id: int, body: bytes, headers: dict | None = None) -> tuple[int, dict]:
    async with api.post(f"/api/v1/integrations/{integration_id}/inbound", data=body,
                        headers={"Content-Type": "application/json", **(headers or {})}) as response:
        return response.status, (await response.json()) if response.content_length != 0 else {}


async def events_of(infra, integration_id: int, expected: int) -> list:
    return await read_topic(infra.bootstrap_servers, topics.INTEGRATIONS_EVENTS, expected,
                            match=lambda e: e.type == contract.ORDER_RECEIVED and e.data.get("integration_id") == integration_id)


def floats_in(value) -> list:
    if isinstance(value, float):
        return [value]
    if isinstance(value, dict):
        return [f for item in value.values() for f in floats_in(item)]
    if isinstance(value, list):
        return [f for item in value for f in floats_in(item)]
    return []


async def test_a_signed_custom_order_is_202_durable_and_handed_over_with_its_raw_data(api, infra, tenant, integrations_service):
    integration = await create(api, tenant, "custom")
    document = order()
    body = encode(document)
    status, reply = await push(api, integration["id"], body, signed(integration["inbound_secret"], body))
    assert status == 202, reply
    assert reply["data"]["status"] == "received" and reply["data"]["external_id"] == document["external_id"]

    stored = await integrations_service.pool.fetchrow(
        "SELECT body, normalized FROM integrations.inbound_orders WHERE integration_id = $1", integration["id"])
    assert bytes(stored["body"]) == body  # the exact bytes that were signed

    [event] = await events_of(infra, integration["id"], 1)
    assert event.tenantid == tenant.id and event.source == "posint/integrations"
    assert event.subject == f"{integration['id']}/{document['external_id']}"
    received = contract.OrderReceived.model_validate(event.data)
    assert received.raw_data == document and received.provider == "custom"
    assert event.data["order"]["total"] == "27.82" and event.data["order"]["items"][0]["unit_price"] == "10.99"
    assert floats_in(event.data["order"]) == []  # money is a decimal string on the wire, never a number

    async with api.get(f"/api/v1/integrations/{integration['id']}", headers={"Authorization": f"Bearer {tenant.key}"}) as response:
        health = (await response.json())["data"]["health"]
    assert health["last_inbound_order_at"] is not None


@pytest.mark.parametrize("case", ["wrong secret", "stale timestamp", "future timestamp", "tampered body",
                                  "no webhook-id", "no webhook-timestamp", "no webhook-signature", "no headers",
                                  "garbage signature", "body not UTF-8"])
async def test_a_custom_push_that_is_not_signed_right_is_401(api, tenant, case, integrations_service):
    integration = await create(api, tenant, "custom")
    secret, body = integration["inbound_secret"], encode(order())
    headers = signed(secret, body)
    if case == "wrong secret":
        headers = signed(other_secret(), body)
    elif case == "stale timestamp":
        headers = signed(secret, body, at=datetime.now(timezone.utc) - timedelta(minutes=6))
    elif case == "future timestamp":
        headers = signed(secret, body, at=datetime.now(timezone.utc) + timedelta(minutes=6))
    elif case == "tampered body":
        body = body.replace(b"27.82", b"0.01")
    elif case.startswith("no webhook"):
        headers.pop(case.removeprefix("no "))
    elif case == "no headers":
        headers = {}
    elif case == "garbage signature":
        headers["webhook-signature"] = "v1 nonsense,,,"
    elif case == "body not UTF-8":  # Standard Webhooks signs text: such a body cannot verify
        body = b"\xff\xfe" + body
    status, reply = await push(api, integration["id"], body, headers)
    assert status == 401, reply
    assert reply["type"].endswith("/inbound-unauthorized") and "request_id" in reply
    count = await integrations_service.pool.fetchval(
        "SELECT count(*) FROM integrations.inbound_orders WHERE integration_id = $1", integration["id"])
    assert count == 0


async def test_a_timestamp_within_five_minutes_is_accepted(api, tenant):
    integration = await create(api, tenant, "custom")
    body = encode(order())
    headers = signed(integration["inbound_secret"], body, at=datetime.now(timezone.utc) - timedelta(minutes=4))
    assert (await push(api, integration["id"], body, headers))[0] == 202


async def test_an_unknown_or_deleted_id_is_the_same_401_as_a_bad_signature(api, tenant):
    integration = await create(api, tenant, "custom")
    body = encode(order())
    _, bad_signature = await push(api, integration["id"], body, signed(other_secret(), body))
    _, unknown = await push(api, 2**62, body, signed(other_secret(), body))
    async with api.delete(f"/api/v1/integrations/{integration['id']}", headers={"Authorization": f"Bearer {tenant.key}"}) as response:
        assert response.status == 204
    status, deleted = await push(api, integration["id"], body, signed(integration["inbound_secret"], body))
    assert status == 401
    strip = lambda problem: {k: v for k, v in problem.items() if k != "request_id"}  # noqa: E731
    assert strip(bad_signature) == strip(unknown) == strip(deleted)


async def test_another_tenants_secret_cannot_push_to_this_tenants_integration(api, infra, gateway_service):
    a = Tenant(*await create_tenant(gateway_service.pool, unique("inbound-a")))
    b = Tenant(*await create_tenant(gateway_service.pool, unique("inbound-b")))
    mine, theirs = await create(api, a, "custom"), await create(api, b, "custom")
    body = encode(order())
    status, _ = await push(api, mine["id"], body, signed(theirs["inbound_secret"], body))
    assert status == 401
    # and B's API key does not help either: this endpoint ignores keys, only the signature counts
    status, _ = await push(api, mine["id"], body, {**signed(theirs["inbound_secret"], body), "Authorization": f"Bearer {b.key}"})
    assert status == 401
    status, _ = await push(api, theirs["id"], body, signed(theirs["inbound_secret"], body))
    assert status == 202
    [event] = await events_of(infra, theirs["id"], 1)
    assert event.tenantid == b.id


async def test_a_repeated_delivery_answers_2xx_and_hands_over_nothing_new(api, infra, tenant, integrations_service):
    integration = await create(api, tenant, "custom")
    secret, document = integration["inbound_secret"], order()
    body = encode(document)
    first = signed(secret, body)
    assert (await push(api, integration["id"], body, first))[0] == 202
    # the platform retries the same message (same webhook-id, a fresh timestamp and signature)
    status, reply = await push(api, integration["id"], body, signed(secret, body, msg_id=first["webhook-id"]))
    assert (status, reply["data"]["status"]) == (200, "duplicate")
    # the same order again under another message id, unchanged
    status, reply = await push(api, integration["id"], body, signed(secret, body))
    assert (status, reply["data"]["status"], reply["data"]["external_id"]) == (200, "duplicate", document["external_id"])
    # another order under the first message id is that message again, too
    other = encode(order())
    status, reply = await push(api, integration["id"], other, signed(secret, other, msg_id=first["webhook-id"]))
    assert (status, reply["data"]["status"]) == (200, "duplicate")

    marker = order()
    marker_body = encode(marker)
    assert (await push(api, integration["id"], marker_body, signed(secret, marker_body)))[0] == 202
    events = await events_of(infra, integration["id"], 2)  # the outbox publishes in order: a copy would precede the marker
    assert sorted(e.data["external_id"] for e in events) == sorted([document["external_id"], marker["external_id"]])
    count = await integrations_service.pool.fetchval(
        "SELECT count(*) FROM integrations.inbound_orders WHERE integration_id = $1", integration["id"])
    assert count == 2


async def test_a_known_order_with_changed_content_is_handed_over_again_as_an_update(api, infra, tenant, integrations_service):
    integration = await create(api, tenant, "custom")
    secret, document = integration["inbound_secret"], order()
    body = encode(document)
    first = signed(secret, body)
    assert (await push(api, integration["id"], body, first))[0] == 202
    changed = encode({**document, "notes": "no onions"})
    second = signed(secret, changed)
    status, reply = await push(api, integration["id"], changed, second)
    assert (status, reply["data"]["status"], reply["data"]["external_id"]) == (200, "updated", document["external_id"])
    # the update's own redelivery, and the first message again, change nothing more
    assert (await push(api, integration["id"], changed, signed(secret, changed, msg_id=second["webhook-id"])))[1]["data"]["status"] == "duplicate"
    assert (await push(api, integration["id"], body, signed(secret, body, msg_id=first["webhook-id"])))[1]["data"]["status"] == "duplicate"

    events = await events_of(infra, integration["id"], 2)
    assert [e.data["order"].get("notes") for e in events] == [document.get("notes"), "no onions"]
    assert len({e.subject for e in events}) == 1  # one order's copies keep their order on one key
    row = await integrations_service.pool.fetchrow(
        "SELECT count(*) OVER () AS orders, revision, normalized->>'notes' AS notes FROM integrations.inbound_orders"
        " WHERE integration_id = $1", integration["id"])
    assert (row["orders"], row["revision"], row["notes"]) == (1, 2, "no onions")


@pytest.mark.parametrize("body, says", [
    (b'{"external_id": "x", ', "not valid JSON"),
    (b"[1, 2]", "must be a JSON object"),
    (b'{"a": NaN}', "not valid JSON"),
    (b'{"a": "nul \\u0000 here"}', "NUL"),
    (encode(order(total=27.82)), "not valid"),
    (encode({**order(), "unexpected": 1}), "not valid"),
    (encode(order(items=[])), "not valid"),
])
async def test_a_verified_payload_that_is_not_an_order_is_400_and_kept(api, tenant, integrations_service, body, says):
    integration = await create(api, tenant, "custom")
    headers = signed(integration["inbound_secret"], body)
    status, reply = await push(api, integration["id"], body, headers)
    assert status == 400, reply
    assert says in reply["detail"] and reply["type"].endswith("/invalid-order")
    if says == "not valid" and b"27.82," in body:
        assert {"field": "total", "message": 'Value error, must be a decimal string such as "12.50", not a JSON number'} in reply["errors"]
    kept = await integrations_service.pool.fetch(
        "SELECT body, error, webhook_id FROM integrations.inbound_rejections WHERE integration_id = $1", integration["id"])
    assert [bytes(row["body"]) for row in kept] == [body] and kept[0]["webhook_id"] == headers["webhook-id"]
    assert await integrations_service.pool.fetchval(
        "SELECT count(*) FROM integrations.inbound_orders WHERE integration_id = $1", integration["id"]) == 0


@pytest.mark.parametrize("size", [INBOUND_MAX_BYTES + 1, 1024 * 1024 + 1])
async def test_a_body_over_the_limit_is_413_without_a_key(api, tenant, size):
    integration = await create(api, tenant, "custom")
    body = b"x" * size
    status, reply = await push(api, integration["id"], body, signed(integration["inbound_secret"], body))
    assert status == 413 and reply["status"] == 413


async def test_an_inactive_integration_is_409_but_only_to_a_signed_push(api, tenant):
    integration = await create(api, tenant, "custom")
    async with api.patch(f"/api/v1/integrations/{integration['id']}", json={"is_active": False},
                         headers={"Authorization": f"Bearer {tenant.key}"}) as response:
        assert response.status == 200
    body = encode(order())
    assert (await push(api, integration["id"], body, signed(other_secret(), body)))[0] == 401
    status, reply = await push(api, integration["id"], body, signed(integration["inbound_secret"], body))
    assert status == 409 and reply["type"].endswith("/integration-inactive")


# --- the other providers' schemes ------------------------------------------------------------------

def ubereats_push(order_id: str) -> dict:
    amount = lambda cents: {"amount": cents, "currency_code": "USD"}  # noqa: E731
    return {
        "event_id": f"evt-{uuid.uuid4().hex}", "event_type": "orders.notification", "event_time": int(time.time()),
        "meta": {"resource_id": order_id, "user_id": "ue-1", "status": "pos"},
        "resource_href": f"https://api.uber.com/v2/eats/order/{order_id}",
        "order": {"id": order_id, "placed_at": "2026-01-04T18:00:00Z", "type": "PICK_UP",
                  "eater": {"first_name": "Ada", "last_name": "L", "phone": "+15550100"},
                  "cart": {"items": [{"id": "i1", "title": "Bowl", "quantity": 1, "price": {"unit_price": amount(1250)},
                                      "selected_modifier_groups": [{"selected_items": [
                                          {"id": "m1", "title": "Extra", "quantity": 1, "price": {"unit_price": amount(75)}}]}]}],
                           "special_instructions": "no onions"},
                  "payment": {"charges": {"sub_total": amount(1325), "tax": amount(106), "total": amount(1431)}}},
    }


def uber_signature(secret: str, body: bytes) -> dict:
    return {"X-Uber-Signature": hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()}


async def test_ubereats_x_uber_signature(api, infra, tenant):
    integration = await create(api, tenant, "ubereats")
    secret = CREDENTIALS["ubereats"]["client_secret"]
    native = ubereats_push("uber-order-1")
    body = encode(native)
    assert (await push(api, integration["id"], body, uber_signature("other-secret", body)))[0] == 401
    assert (await push(api, integration["id"], body, {}))[0] == 401
    assert (await push(api, integration["id"], body + b" ", uber_signature(secret, body)))[0] == 401
    status, reply = await push(api, integration["id"], body, uber_signature(secret, body))
    assert status == 202, reply
    [event] = await events_of(infra, integration["id"], 1)
    assert event.data["raw_data"] == native and event.data["webhook_id"] == native["event_id"]
    normalized = event.data["order"]
    assert (normalized["external_id"], normalized["fulfillment"], normalized["total"], normalized["currency"]) == (
        "uber-order-1", "pickup", "14.31", "USD")
    assert normalized["items"][0]["unit_price"] == "12.50" and normalized["items"][0]["modifiers"][0]["unit_price"] == "0.75"
    # Uber redelivers the same event: recognised by its event_id
    assert (await push(api, integration["id"], body, uber_signature(secret, body)))[0] == 200


async def test_ubereats_payload_the_adapter_cannot_parse_is_400_naming_the_field(api, tenant):
    integration = await create(api, tenant, "ubereats")
    native = ubereats_push("uber-order-2")
    del native["order"]["payment"]
    body = encode(native)
    status, reply = await push(api, integration["id"], body, uber_signature(CREDENTIALS["ubereats"]["client_secret"], body))
    assert status == 400 and any(error["field"] == "order.payment" for error in reply["errors"]), reply


def doordash_push(order_id: str) -> dict:
    return {"event": {"type": "OrderCreate", "status": "NEW"},
            "order": {"id": order_id, "created_at": "2026-01-04T18:00:00Z", "is_pickup": False,
                      "consumer": {"first_name": "Ada", "phone": "+15550100"},
                      "categories": [{"items": [{"merchant_supplied_id": "p1", "name": "Pizza", "quantity": 2, "price": 999}]}],
                      "subtotal": 1998, "tax": 160, "tip_amount": 300}}


async def test_doordash_authorization_token(api, infra, tenant):
    integration = await create(api, tenant, "doordash")
    body = encode(doordash_push("dd-order-1"))
    assert (await push(api, integration["id"], body, {"Authorization": f"Bearer {other_secret()}"}))[0] == 401
    assert (await push(api, integration["id"], body, {}))[0] == 401
    status, reply = await push(api, integration["id"], body, {"Authorization": f"Bearer {integration['inbound_secret']}"})
    assert status == 202, reply
    [event] = await events_of(infra, integration["id"], 1)
    assert (event.data["order"]["total"], event.data["order"]["items"][0]["unit_price"]) == ("24.58", "9.99")


def grubhub_push(order_id: str) -> dict:
    return {"order": {"id": order_id, "time_placed": "2026-01-04T18:00:00.000Z", "diner_info": {"name": "Ada"},
                      "fulfillment_info": {"fulfillment_type": "PICKUP"},
                      "charges": {"lines": {"line_items": [{"id": "l1", "name": "Soup", "quantity": 1, "price": 650}]},
                                  "diner_subtotal": 650, "taxes": {"total": 52}, "tip": {"amount": 100},
                                  "diner_grand_total": 802}}}


async def test_grubhub_mac_authorization(api, infra, tenant):
    integration = await create(api, tenant, "grubhub")
    client_id, secret = CREDENTIALS["grubhub"]["client_id"], CREDENTIALS["grubhub"]["secret_key"]
    body = encode(grubhub_push("gh-order-1"))
    wrong = mac_header(client_id, "not-the-secret", "n1", body, integration["id"])
    assert (await push(api, integration["id"], body, {"Authorization": wrong}))[0] == 401
    tampered = mac_header(client_id, secret, "n2", body + b" ", integration["id"])
    assert (await push(api, integration["id"], body, {"Authorization": tampered}))[0] == 401
    assert (await push(api, integration["id"], body, {}))[0] == 401
    status, reply = await push(api, integration["id"], body, {"Authorization": mac_header(client_id, secret, "n3", body, integration["id"])})
    assert status == 202, reply
    [event] = await events_of(infra, integration["id"], 1)
    assert (event.data["order"]["total"], event.data["order"]["fulfillment"]) == ("8.02", "pickup")


async def test_an_accounting_integration_takes_no_pushes(api, tenant):
    document = {"name": "QB", "integration_type": "accounting", "provider": "quickbooks", "config": {"realm_id": "1"},
                "credentials": {"client_id": "c", "client_secret": "s", "refresh_token": "r"}}
    async with api.post("/api/v1/integrations", json=document, headers={"Authorization": f"Bearer {tenant.key}"}) as response:
        integration = (await response.json())["data"]
    body = encode(order())
    assert (await push(api, integration["id"], body, signed(integration["inbound_secret"], body)))[0] == 401


async def test_kept_rejections_are_bounded_per_integration(api, tenant, integrations_service):
    from integrations.adapters import inbound_repository as repository

    integration = await create(api, tenant, "custom")
    async with integrations_service.pool.acquire() as conn:
        row = await repository.live_integration(conn, integration["id"])
        for n in range(repository.KEEP_REJECTIONS + 5):
            await repository.add_rejection(conn, row, None, f"error {n}", b"y" * (repository.KEEP_REJECTED_BYTES + n))
        kept = await conn.fetch("SELECT error, body_bytes, length(body) AS stored FROM integrations.inbound_rejections"
                                " WHERE integration_id = $1 ORDER BY id", integration["id"])
    assert len(kept) == repository.KEEP_REJECTIONS and kept[0]["error"] == "error 5"  # the oldest went first
    assert {row["stored"] for row in kept} == {repository.KEEP_REJECTED_BYTES}
    assert kept[-1]["body_bytes"] == repository.KEEP_REJECTED_BYTES + repository.KEEP_REJECTIONS + 4


async def test_a_header_that_is_not_printable_ascii_is_not_forwarded_and_does_not_verify(api, tenant, gateway_service):
    """aiohttp hands non-UTF-8 header bytes over as surrogates, which JSON and Postgres refuse: such a
    header is not forwarded (so the push does not verify) rather than failing the request."""
    import asyncio

    integration = await create(api, tenant, "custom")
    body = encode(order())
    headers = signed(integration["inbound_secret"], body)
    lines = [f"POST /api/v1/integrations/{integration['id']}/inbound HTTP/1.1", "Host: 127.0.0.1",
             f"webhook-timestamp: {headers['webhook-timestamp']}", f"webhook-signature: {headers['webhook-signature']}",
             f"Content-Length: {len(body)}", "Connection: close"]
    raw = ("\r\n".join(lines) + "\r\n").encode() + b"webhook-id: msg_\xff\xe9\r\n\r\n" + body
    reader, writer = await asyncio.open_connection("127.0.0.1", gateway_service.ports["http"])
    writer.write(raw)
    await writer.drain()
    answer = await reader.read()
    writer.close()
    assert answer.startswith(b"HTTP/1.1 401"), answer[:200]


async def test_no_signature_token_or_secret_reaches_a_log_line(api, tenant, capfd):
    capfd.readouterr()
    doordash, custom = await create(api, tenant, "doordash"), await create(api, tenant, "custom")
    body = encode(doordash_push("dd-log-1"))
    assert (await push(api, doordash["id"], body, {"Authorization": f"Bearer {doordash['inbound_secret']}"}))[0] == 202
    assert (await push(api, doordash["id"], body, {"Authorization": "Bearer wrong-token-in-log-test"}))[0] == 401
    body = encode(order())
    headers = signed(custom["inbound_secret"], body)
    assert (await push(api, custom["id"], body, headers))[0] == 202
    logged = "".join(capfd.readouterr())
    assert "inbound_order_received" in logged and "inbound_refused" in logged  # the lines were captured
    for value in (doordash["inbound_secret"], "wrong-token-in-log-test", custom["inbound_secret"].removeprefix("whsec_"),
                  headers["webhook-signature"].removeprefix("v1,")):
        assert value not in logged
