"""External orders end to end: orders pushed through the real signed inbound endpoint, handed over
by the integrations service on integrations.events, kept by the orders service, read and rejected
through the real gateway (GET/POST /api/v1/external-orders...), events on orders.events."""
from __future__ import annotations

import json
import uuid
from datetime import datetime, timedelta, timezone
from urllib.parse import parse_qs, urlsplit

import pytest
from standardwebhooks import Webhook

from gateway.tenants import create_tenant
from posint_common import kafka
from posint_common.contracts import inbound, orders as contract, topics
from posint_common.envelope import Envelope
from posint_common.testing import eventually, read_topic, unique

from .conftest import Tenant, bearer


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


def doordash_push(order_id: str) -> dict:
    return {"event": {"type": "OrderCreate", "status": "NEW"},
            "order": {"id": order_id, "created_at": "2026-01-04T18:00:00Z", "is_pickup": True,
                      "consumer": {"first_name": "Bo"},
                      "categories": [{"items": [{"merchant_supplied_id": "p1", "name": "Pizza", "quantity": 1, "price": 999}]}],
                      "subtotal": 999, "tax": 80, "tip_amount": 0}}


def without_nulls(value):
    if isinstance(value, dict):
        return {k: without_nulls(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [without_nulls(item) for item in value]
    return value


@pytest.fixture
async def tenant(gateway_service, integrations_service, orders_service) -> Tenant:
    return Tenant(*await create_tenant(gateway_service.pool, unique("orders")))


@pytest.fixture
async def intruder(gateway_service) -> Tenant:
    return Tenant(*await create_tenant(gateway_service.pool, unique("intruder")))


async def create(api, tenant: Tenant, provider: str = "custom") -> dict:
    config = {"custom": {}, "doordash": {"store_id": "dd-1"}}[provider]
    credentials = {"custom": {}, "doordash": {"developer_id": "d", "key_id": "k", "signing_secret": "s"}}[provider]
    document = {"name": provider, "integration_type": "delivery", "provider": provider, "config": config,
                "credentials": credentials}
    async with api.post("/api/v1/integrations", json=document, headers=bearer(tenant)) as response:
        assert response.status == 201, await response.text()
        return (await response.json())["data"]


async def push(api, integration: dict, document: dict, expect: int = 202) -> None:
    """A signed push, as the platform sends it: Standard Webhooks for custom, the token for DoorDash."""
    body = json.dumps(document)
    if integration["provider"] == "custom":
        msg_id, at = f"msg_{uuid.uuid4().hex}", datetime.now(timezone.utc)
        headers = {"webhook-id": msg_id, "webhook-timestamp": str(int(at.timestamp())),
                   "webhook-signature": Webhook(integration["inbound_secret"]).sign(msg_id, at, body)}
    else:
        headers = {"Authorization": f"Bearer {integration['inbound_secret']}"}  # DoorDash's token
    async with api.post(f"/api/v1/integrations/{integration['id']}/inbound", data=body.encode(),
                        headers={"Content-Type": "application/json", **headers}) as response:
        assert response.status == expect, await response.text()


async def get(api, tenant: Tenant, path: str) -> tuple[int, dict, dict]:
    async with api.get(path, headers=bearer(tenant)) as response:
        return response.status, await response.json(), dict(response.headers)


async def listed(api, tenant: Tenant, count: int, query: str = "") -> list[dict]:
    """The list once it holds ``count`` orders (the hand-over is asynchronous)."""
    found: list[dict] = []

    async def arrived() -> bool:
        status, body, _ = await get(api, tenant, f"/api/v1/external-orders{query}")
        assert status == 200, body
        found[:] = body["data"]
        return len(found) >= count

    await eventually(arrived, what=f"{count} orders")
    return found


async def outbox_drained(orders_service) -> None:
    await eventually(lambda: orders_service.pool.fetchval("SELECT count(*) = 0 FROM orders.outbox"), what="orders outbox")


async def order_events(infra, order_id: int, type: str, expected: int) -> list[Envelope]:
    return await read_topic(infra.bootstrap_servers, topics.ORDERS_EVENTS, expected,
                            match=lambda e: e.type == type and e.subject == str(order_id))


async def test_a_pushed_order_is_listed_with_the_contract_fields_and_announced_once(api, infra, tenant, orders_service):
    integration = await create(api, tenant)
    document = order()
    await push(api, integration, document)
    [shown] = await listed(api, tenant, 1)

    assert list(shown)[:5] == ["id", "integration_id", "external_id", "status", "raw_data"]
    assert (shown["integration_id"], shown["external_id"], shown["status"]) == (integration["id"], document["external_id"], "received")
    assert shown["raw_data"] == document
    for field in ("customer", "fulfillment", "subtotal", "tax", "tip", "total", "currency", "notes"):
        assert shown[field] == document[field], field
    assert shown["placed_at"] == "2026-01-04T18:00:00Z"
    assert shown["items"][0]["unit_price"] == "10.99" and shown["items"][0]["modifiers"][0]["unit_price"] == "0.50"
    assert (shown["injection_status"], shown["pos_order_id"]) == (None, None)
    created_at = datetime.fromisoformat(shown["created_at"])
    window = datetime.fromisoformat(shown["accept_by"]) - created_at
    assert timedelta(minutes=7) < window <= timedelta(minutes=8, seconds=1)  # custom: 8 minutes from arrival

    status, detail, _ = await get(api, tenant, f"/api/v1/external-orders/{shown['id']}")
    assert status == 200
    assert {k: v for k, v in detail["data"].items() if k not in ("status_history", "platform_sync")} == shown
    assert detail["data"]["platform_sync"] is None  # nothing sent back to the platform yet
    [line] = detail["data"]["status_history"]
    assert (line["from"], line["to"], line["source"], line["reason"]) == (None, "received", "platform", None)

    await outbox_drained(orders_service)
    events = await order_events(infra, shown["id"], contract.ORDER_CREATED, 1)
    assert len(events) == 1
    [event] = events
    assert event.tenantid == tenant.id and event.source == "posint/orders"
    assert event.data["tenant_id"] == tenant.id and event.data["integration_id"] == integration["id"]
    assert event.data["order"] == without_nulls(shown)  # the order as the API shows it (events leave out nulls)


async def test_a_redelivered_hand_over_is_harmless_and_changed_content_is_an_update(api, infra, tenant, orders_service):
    integration = await create(api, tenant)
    document = order()
    await push(api, integration, document)
    [handed_over] = await read_topic(infra.bootstrap_servers, topics.INTEGRATIONS_EVENTS, 1,
                                     match=lambda e: e.type == inbound.ORDER_RECEIVED
                                     and e.data["integration_id"] == integration["id"])
    [first] = await listed(api, tenant, 1)

    def copy(**changes) -> Envelope:  # the platform sent the order again, changed: a new message
        received = inbound.OrderReceived.model_validate(handed_over.data)
        changed = received.model_copy(update={"order": received.order.model_copy(update=changes),
                                              "raw_data": {**received.raw_data, **changes}})
        return Envelope.wrap(changed, source=handed_over.source, type=handed_over.type, subject=handed_over.subject,
                             tenantid=handed_over.tenantid)

    producer = kafka.make_producer(infra.settings(), client_id=unique("redeliver"))
    await producer.start()
    try:
        await kafka.send(producer, topics.INTEGRATIONS_EVENTS, handed_over, 5)  # the relay's at-least-once: a redelivery
        await kafka.send(producer, topics.INTEGRATIONS_EVENTS, copy(notes="no onions"), 5)
        await kafka.send(producer, topics.INTEGRATIONS_EVENTS, copy(notes="no onions"), 5)  # same content again
        await kafka.send(producer, topics.INTEGRATIONS_EVENTS, copy(notes="leave at door"), 5)
    finally:
        await producer.stop()

    path = f"/api/v1/external-orders/{first['id']}"

    async def both_updates() -> bool:
        return len((await get(api, tenant, path))[1]["data"]["status_history"]) >= 3

    await eventually(both_updates, what="the updates in the history")  # same key, one partition: in order
    _, detail, _ = await get(api, tenant, path)
    history = [(c["from"], c["to"], c["source"], c["reason"]) for c in detail["data"]["status_history"]]
    assert history == [(None, "received", "platform", None),
                       ("received", "received", "platform", "updated by the platform"),
                       ("received", "received", "platform", "updated by the platform")]
    assert detail["data"]["notes"] == "leave at door" and detail["data"]["raw_data"]["notes"] == "leave at door"
    assert [o["id"] for o in await listed(api, tenant, 1)] == [first["id"]]  # never a second order

    await outbox_drained(orders_service)
    assert len(await order_events(infra, first["id"], contract.ORDER_CREATED, 1)) == 1
    updates = await order_events(infra, first["id"], contract.ORDER_UPDATED, 2)
    assert [u.data["order"]["notes"] for u in updates] == ["no onions", "leave at door"]


async def test_a_platform_push_with_changed_content_becomes_an_update_of_the_same_order(api, tenant, orders_service):
    integration = await create(api, tenant)
    document = order()
    await push(api, integration, document)
    [first] = await listed(api, tenant, 1)
    await push(api, integration, {**document, "notes": "no onions"}, expect=200)  # answered "updated"
    path = f"/api/v1/external-orders/{first['id']}"

    async def updated() -> bool:
        return (await get(api, tenant, path))[1]["data"]["notes"] == "no onions"

    await eventually(updated, what="the platform's update on the order")
    _, detail, _ = await get(api, tenant, path)
    assert [(c["from"], c["to"], c["reason"]) for c in detail["data"]["status_history"]] == [
        (None, "received", None), ("received", "received", "updated by the platform")]
    assert [o["id"] for o in await listed(api, tenant, 1)] == [first["id"]]


async def test_filters_by_integration_status_and_creation_time_newest_first(api, tenant, orders_service):
    custom, doordash = await create(api, tenant), await create(api, tenant, "doordash")
    for _ in range(3):
        await push(api, custom, order())
    await push(api, doordash, doordash_push(f"dd-{uuid.uuid4().hex[:8]}"))
    everything = await listed(api, tenant, 4)
    ids = [o["id"] for o in everything]
    assert ids == sorted(ids, reverse=True)  # newest first

    only_custom = await listed(api, tenant, 3, f"?integration_id={custom['id']}")
    assert {o["integration_id"] for o in only_custom} == {custom["id"]} and len(only_custom) == 3
    [dd] = await listed(api, tenant, 1, f"?integration_id={doordash['id']}")
    assert (dd["external_id"].startswith("dd-"), dd["fulfillment"], dd["total"]) == (True, "pickup", "10.79")

    await orders_service.pool.execute("UPDATE orders.orders SET status = 'accepted' WHERE id = $1", ids[0])
    assert [o["id"] for o in await listed(api, tenant, 1, "?status=accepted")] == [ids[0]]
    assert [o["id"] for o in await listed(api, tenant, 4, "?status=received,accepted")] == ids
    assert len(await listed(api, tenant, 0, "?status=received")) == 3
    assert await listed(api, tenant, 0, "?status=rejected,expired") == []

    oldest = datetime.fromisoformat(everything[-1]["created_at"])
    before = (oldest - timedelta(seconds=1)).isoformat().replace("+00:00", "Z")
    assert len(await listed(api, tenant, 4, f"?created_after={before}")) == 4
    assert await listed(api, tenant, 0, f"?created_before={before}") == []
    status, body, _ = await get(api, tenant, "/api/v1/external-orders?created_after=2026-01-01T00:00:00%2B05:00")
    assert status == 200 and len(body["data"]) == 4  # an offset, percent-encoded


async def test_pages_keep_the_filters_and_skip_or_repeat_nothing_while_orders_arrive(api, tenant, orders_service):
    custom, doordash = await create(api, tenant), await create(api, tenant, "doordash")
    for _ in range(5):
        await push(api, custom, order())
    await push(api, doordash, doordash_push(f"dd-{uuid.uuid4().hex[:8]}"))
    first_five = [o["id"] for o in await listed(api, tenant, 5, f"?integration_id={custom['id']}")]

    seen, link, pages = [], f"/api/v1/external-orders?integration_id={custom['id']}&status=received&limit=2", 0
    while link:
        status, body, headers = await get(api, tenant, link)
        assert status == 200, body
        seen += [o["id"] for o in body["data"]]
        pages += 1
        await push(api, custom, order())  # a new order arrives between pages
        link = None
        if "Link" in headers:
            target = headers["Link"].split(";")[0].strip("<>")
            query = parse_qs(urlsplit(target).query)
            assert query["integration_id"] == [str(custom["id"])] and query["status"] == ["received"], target
            assert query["limit"] == ["2"]
            link = target
    assert seen == first_five and pages == 3  # 2 + 2 + 1: the last page is not full, no Link


@pytest.mark.parametrize("query, field", [
    ("status=nope", "status"), ("status=received,", "status"), ("status=RECEIVED", "status"),
    ("created_after=2026-01-01T00:00:00", "created_after"), ("created_before=yesterday", "created_before"),
    ("integration_id=abc", "integration_id"), ("integration_id=-1", "integration_id"),
    ("after=9223372036854775808", "after"), ("limit=0", "limit"), ("limit=201", "limit"),
])
async def test_a_bad_filter_is_422_naming_the_parameter(api, tenant, query, field):
    status, body, headers = await get(api, tenant, f"/api/v1/external-orders?{query}")
    assert status == 422, body
    assert headers["Content-Type"].startswith("application/problem+json")
    assert [error["field"] for error in body["errors"]] == [field]
    assert "nope" not in json.dumps(body) and "yesterday" not in json.dumps(body)  # never quoted back


async def test_reject_applies_once_and_an_illegal_move_is_409_with_what_is_allowed(api, infra, tenant, orders_service):
    integration = await create(api, tenant)
    await push(api, integration, order())
    await push(api, integration, order())
    second, first = await listed(api, tenant, 2)
    reject = {"reason_code": "ITEM_UNAVAILABLE", "detail": "out of buns", "unavailable_item_ids": ["burger"]}
    path = f"/api/v1/external-orders/{first['id']}/reject"

    for attempt in range(2):  # the repeat answers the same, with no second effect
        async with api.post(path, json=reject, headers=bearer(tenant)) as response:
            assert response.status == 200, await response.text()
            data = (await response.json())["data"]
        assert data["status"] == "rejected"
        assert [(c["from"], c["to"], c["source"], c["reason"]) for c in data["status_history"]] == [
            (None, "received", "platform", None), ("received", "rejected", "merchant", "ITEM_UNAVAILABLE: out of buns")]
    await outbox_drained(orders_service)
    events = await order_events(infra, first["id"], contract.ORDER_REJECTED, 1)
    assert len(events) == 1
    assert (events[0].data["reason_code"], events[0].data["order"]["status"]) == ("ITEM_UNAVAILABLE", "rejected")
    assert events[0].data["unavailable_item_ids"] == ["burger"]

    await orders_service.pool.execute("UPDATE orders.orders SET status = 'accepted' WHERE id = $1", second["id"])
    async with api.post(f"/api/v1/external-orders/{second['id']}/reject", json={"reason_code": "TOO_BUSY"},
                        headers=bearer(tenant)) as response:
        assert response.status == 409
        problem = await response.json()
    assert problem["current_status"] == "accepted"
    assert set(problem["allowed_actions"]) == {"cancel", "prepare", "ready"}
    _, detail, _ = await get(api, tenant, f"/api/v1/external-orders/{second['id']}")
    assert detail["data"]["status"] == "accepted" and len(detail["data"]["status_history"]) == 1


@pytest.mark.parametrize("body, field", [
    ({}, "reason_code"), ({"reason_code": "BORED"}, "reason_code"),
    ({"reason_code": "OTHER", "extra": 1}, "extra"), ({"reason_code": "OTHER", "unavailable_item_ids": []}, "unavailable_item_ids"),
])
async def test_a_bad_reject_body_is_422_and_changes_nothing(api, tenant, body, field):
    async with api.post("/api/v1/external-orders/1/reject", json=body, headers=bearer(tenant)) as response:
        assert response.status == 422
        assert [error["field"] for error in (await response.json())["errors"]] == [field]


async def test_every_endpoint_refuses_another_tenants_key_with_404(api, tenant, intruder, orders_service):
    integration = await create(api, tenant)
    await push(api, integration, order())
    [mine] = await listed(api, tenant, 1)

    status, body, _ = await get(api, intruder, f"/api/v1/external-orders?integration_id={integration['id']}")
    assert (status, body["data"]) == (200, [])
    for method, path, body in (("GET", f"/api/v1/external-orders/{mine['id']}", None),
                               ("POST", f"/api/v1/external-orders/{mine['id']}/reject", {"reason_code": "OTHER"}),
                               ("GET", "/api/v1/external-orders/9223372036854775807", None)):
        async with api.request(method, path, json=body, headers=bearer(intruder)) as response:
            assert response.status == 404, (method, path)
            assert (await response.json())["type"].endswith("/not-found")
    _, detail, _ = await get(api, tenant, f"/api/v1/external-orders/{mine['id']}")
    assert detail["data"]["status"] == "received"  # the intruder's reject changed nothing


async def test_a_page_of_large_orders_is_cut_short_with_a_next_link_rather_than_failing(api, tenant, orders_service):
    doordash = await create(api, tenant, "doordash")
    for _ in range(5):  # ~240 KB of platform data each: a 5-order page would pass the broker's 1 MiB record limit
        await push(api, doordash, {**doordash_push(f"dd-{uuid.uuid4().hex[:8]}"), "padding": "x" * 240_000})
    await listed(api, tenant, 1, f"?integration_id={doordash['id']}&limit=1")
    await eventually(lambda: orders_service.pool.fetchval(
        "SELECT count(*) = 5 FROM orders.orders WHERE integration_id = $1", doordash["id"]), what="5 large orders")

    seen, link, sizes = [], f"/api/v1/external-orders?integration_id={doordash['id']}&limit=10", []
    while link:
        status, body, headers = await get(api, tenant, link)
        assert status == 200, body
        assert "x-posint-page-continues" not in {name.lower() for name in headers}
        seen += [o["id"] for o in body["data"]]
        sizes.append(len(body["data"]))
        link = headers["Link"].split(";")[0].strip("<>") if "Link" in headers else None
        assert link is None or parse_qs(urlsplit(link).query)["limit"] == ["10"]
    assert len(seen) == len(set(seen)) == 5 and seen == sorted(seen, reverse=True)
    assert max(sizes) < 5
