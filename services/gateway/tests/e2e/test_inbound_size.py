"""The largest inbound order the contract promises (1 MiB of body) end to end: 202, durable, handed over,
listed and shown by the orders service with its raw data intact, and its ``order.created`` delivered
to a webhook; one byte more is a 413 that stores nothing. Real gateway, broker, services and Postgres."""
from __future__ import annotations

import json
import uuid
from datetime import datetime, timezone
from decimal import Decimal

import pytest
from aiohttp import web
from standardwebhooks import Webhook

from gateway.tenants import create_tenant
from posint_common.testing import eventually, unique

MIB = 1_048_576


def catering_order(size: int) -> tuple[dict, bytes]:
    """A large catering order of exactly ``size`` bytes: dishes with per-guest modifiers (non-ASCII names
    among them) up to about ``size``, the rest filled by the notes; the totals add up."""
    document = {"external_id": f"catering-{uuid.uuid4().hex[:8]}", "placed_at": "2026-01-04T18:00:00Z",
                "customer": {"name": "Händel & Söhne GmbH", "phone": "+15550100"}, "fulfillment": "delivery",
                "items": [], "subtotal": "0", "tax": "0.00", "tip": "0.00", "total": "0", "currency": "USD", "notes": ""}
    length = lambda value: len(json.dumps(value).encode()) + 2  # noqa: E731 - with its ", " in a list
    used, subtotal, guest = length(document) + 16, Decimal("0"), 0  # 16: room for the totals' digits
    for dish in range(200):
        item = {"external_id": f"dish-{dish:03d}", "name": f"Platter {dish}: jalapeño poppers, crème fraîche",
                "quantity": 3, "unit_price": "12.50", "modifiers": []}
        used += length(item)
        for _ in range(50):
            modifier = {"external_id": f"g{guest + 1:05d}", "name": f"Guest {guest + 1}: no onions, extra salsa "
                        "verde, gluten-free tortilla, allergy card attached", "unit_price": "0.25"}
            if used + length(modifier) > size - 1500:
                break
            guest += 1
            used += length(modifier)
            item["modifiers"].append(modifier)
        document["items"].append(item)
        subtotal += 3 * (Decimal("12.50") + len(item["modifiers"]) * Decimal("0.25"))
        if used > size - 1500 - 400:
            break
    document.update(subtotal=str(subtotal), total=str(subtotal))
    room = size - len(json.dumps(document).encode())
    assert 0 < room <= 2000, room  # the notes take at most 2000 characters
    document["notes"] = ("Set up by 11:30 in the east hall; " * 60)[:room]
    body = json.dumps(document).encode()
    assert len(body) == size
    return document, body


def signed(secret: str, body: bytes) -> dict:
    msg_id = f"msg_{uuid.uuid4().hex}"
    at = datetime.now(timezone.utc)
    return {"webhook-id": msg_id, "webhook-timestamp": str(int(at.timestamp())),
            "webhook-signature": Webhook(secret).sign(msg_id, at, body.decode())}


@pytest.fixture
async def receiver():
    """A tenant's webhook receiver on loopback, taking any size."""
    hits: list[tuple[dict, bytes]] = []

    async def handle(request: web.Request) -> web.Response:
        hits.append((dict(request.headers), await request.read()))
        return web.Response(text="ok")

    app = web.Application(client_max_size=64 * MIB)
    app.router.add_post("/hooks", handle)
    runner = web.AppRunner(app, shutdown_timeout=0.1)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    yield f"http://127.0.0.1:{runner.addresses[0][1]}/hooks", hits
    await runner.cleanup()


async def custom_integration(api, gateway_service, webhooks_service):
    tenant_id, key = await create_tenant(gateway_service.pool, unique("inbound-size"))
    auth = {"Authorization": f"Bearer {key}"}
    document = {"name": "Catering shop", "integration_type": "delivery", "provider": "custom", "config": {},
                "credentials": {}}
    async with api.post("/api/v1/integrations", json=document, headers=auth) as response:
        assert response.status == 201, await response.text()
        integration = (await response.json())["data"]

    async def learnt() -> bool:
        return bool(await webhooks_service.pool.fetchval(
            "SELECT true FROM webhook_dispatcher.known_integrations WHERE id = $1 AND NOT deleted", integration["id"]))

    await eventually(learnt, 30, "the dispatcher to learn the integration")
    return auth, integration


async def test_a_one_mib_order_goes_through_the_whole_pipeline(api, gateway_service, integrations_service, orders_service,
                                                               webhooks_service, receiver):
    url, hits = receiver
    auth, integration = await custom_integration(api, gateway_service, webhooks_service)
    async with api.post("/api/v1/webhooks", json={"integration_id": integration["id"], "url": url,
                                                  "events": ["order.created"]}, headers=auth) as response:
        assert response.status == 201, await response.text()
        webhook = (await response.json())["data"]
    document, body = catering_order(MIB)

    async with api.post(f"/api/v1/integrations/{integration['id']}/inbound", data=body,
                        headers={"Content-Type": "application/json", **signed(integration["inbound_secret"], body)}) as response:
        assert response.status == 202, await response.text()
        assert (await response.json())["data"]["status"] == "received"
    stored = await integrations_service.pool.fetchval(
        "SELECT body FROM integrations.inbound_orders WHERE integration_id = $1", integration["id"])
    assert bytes(stored) == body

    listed: list = []

    async def listed_by_the_orders_service() -> bool:
        async with api.get("/api/v1/external-orders", params={"integration_id": integration["id"]}, headers=auth) as answer:
            assert answer.status == 200, await answer.text()
            listed[:] = (await answer.json())["data"]
        return bool(listed)

    await eventually(listed_by_the_orders_service, 30, "the order in GET /external-orders")
    [order] = listed
    assert order["external_id"] == document["external_id"] and order["raw_data"] == document

    async with api.get(f"/api/v1/external-orders/{order['id']}", headers=auth) as response:
        assert response.status == 200, await response.text()
        shown = (await response.json())["data"]
    assert shown["raw_data"] == document  # intact, the non-ASCII text included
    assert len(shown["items"]) == len(document["items"]) and shown["total"] == document["total"]
    assert sum(len(item["modifiers"]) for item in shown["items"]) == sum(len(i["modifiers"]) for i in document["items"])
    assert [change["to"] for change in shown["status_history"]] == ["received"]

    await eventually(lambda: hits, 30, "order.created at the webhook receiver")
    headers, delivered = hits[0]
    message = Webhook(webhook["secret"]).verify(delivered, headers)
    assert message["type"] == "order.created" and message["data"]["raw_data"] == document

    # a small order after it: a page holds it, the large one goes alone on the next page (each fits a reply)
    small, small_body = catering_order(4_000)
    async with api.post(f"/api/v1/integrations/{integration['id']}/inbound", data=small_body,
                        headers={"Content-Type": "application/json",
                                 **signed(integration["inbound_secret"], small_body)}) as response:
        assert response.status == 202, await response.text()
    await eventually(lambda: len(hits) == 2, 30, "the small order's order.created")
    async with api.get("/api/v1/external-orders", params={"integration_id": integration["id"]}, headers=auth) as response:
        first = [o["external_id"] for o in (await response.json())["data"]]
        link = response.headers["Link"].split(";")[0].strip("<>")
    async with api.get(link, headers=auth) as response:
        second = [o["raw_data"] for o in (await response.json())["data"]]
    assert first == [small["external_id"]] and second == [document]


async def test_one_byte_over_a_mib_is_a_413_problem_that_stores_nothing(api, gateway_service, integrations_service,
                                                                         webhooks_service):
    _, integration = await custom_integration(api, gateway_service, webhooks_service)
    _, body = catering_order(MIB + 1)
    async with api.post(f"/api/v1/integrations/{integration['id']}/inbound", data=body,
                        headers={"Content-Type": "application/json", **signed(integration["inbound_secret"], body)}) as response:
        assert response.status == 413
        assert response.content_type == "application/problem+json"
        problem = await response.json()
    assert problem["status"] == 413 and "request_id" in problem
    assert await integrations_service.pool.fetchval(
        "SELECT count(*) FROM integrations.inbound_orders WHERE integration_id = $1", integration["id"]) == 0


async def test_an_order_too_large_once_normalized_is_a_413_that_stores_nothing(api, gateway_service, integrations_service,
                                                                               webhooks_service, monkeypatch):
    """No real push under 1 MiB grows past ORDER_MAX_BYTES in a custom body, so the budget is lowered here:
    what is refused is what would not fit a record, before anything is written (never a 202 left stuck)."""
    from posint_common.contracts import limits

    _, integration = await custom_integration(api, gateway_service, webhooks_service)
    _, body = catering_order(200_000)
    monkeypatch.setattr(limits, "ORDER_MAX_BYTES", 300_000)  # raw + normalized of this order: ~400 KB
    async with api.post(f"/api/v1/integrations/{integration['id']}/inbound", data=body,
                        headers={"Content-Type": "application/json", **signed(integration["inbound_secret"], body)}) as response:
        assert response.status == 413, await response.text()
        assert response.content_type == "application/problem+json"
        problem = await response.json()
    assert problem["type"].endswith("order-too-large") and "300000" in problem["detail"]
    assert await integrations_service.pool.fetchval(
        "SELECT count(*) FROM integrations.inbound_orders WHERE integration_id = $1", integration["id"]) == 0
