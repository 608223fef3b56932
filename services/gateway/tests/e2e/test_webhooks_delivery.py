"""Webhook delivery end to end: events published onto orders.events and integrations.events (with the
contracts, as the orders and integrations services do) reach a tenant's endpoint, registered through
the real gateway, as Standard Webhooks messages verified with the standardwebhooks verifier; rotation,
the deliveries log, retry and recover through the API."""
from __future__ import annotations

import asyncio
import uuid
from collections import defaultdict
from datetime import datetime, timedelta, timezone

import aiohttp
import pytest
from aiohttp import web
from standardwebhooks import Webhook

from gateway.tenants import create_tenant
from posint_common import kafka
from posint_common.contracts import integrations, orders, topics
from posint_common.envelope import Envelope
from posint_common.testing import Tenant, eventually, unique
from webhook_dispatcher.domain.retry import RetryPolicy


@pytest.fixture(scope="module")
async def api_module(gateway_service):
    base = f"http://127.0.0.1:{gateway_service.ports['http']}"
    async with aiohttp.ClientSession(base_url=base, timeout=aiohttp.ClientTimeout(total=15)) as session:
        yield session


@pytest.fixture(scope="module")
async def dispatcher(webhooks_service):
    """The session's dispatcher, its retries compressed and its poll short for this module."""
    delivery = webhooks_service.delivery
    kept = delivery.policy, delivery.poll_interval_s
    delivery.policy, delivery.poll_interval_s = RetryPolicy((0.2,), 0.2, 3600, 3600), 0.05
    yield webhooks_service
    delivery.policy, delivery.poll_interval_s = kept


@pytest.fixture(scope="module")
async def producer(infra):
    made = kafka.make_producer(infra.settings(), client_id="webhook-tests")
    await made.start()
    yield made
    await made.stop()


class Receiver:
    def __init__(self) -> None:
        self.base = ""
        self.hits: dict[str, list] = defaultdict(list)
        self.answers: dict[str, int] = {}

    async def handle(self, request: web.Request) -> web.Response:
        self.hits[request.path].append((dict(request.headers), await request.read()))
        status = self.answers.get(request.path, 200)
        return web.Response(status=status, text=f"answered {status}")


@pytest.fixture(scope="module")
async def receiver():
    made = Receiver()
    app = web.Application()
    app.router.add_route("POST", "/{tail:.*}", made.handle)
    runner = web.AppRunner(app, shutdown_timeout=0.1)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    made.base = f"http://127.0.0.1:{runner.addresses[0][1]}"
    yield made
    await runner.cleanup()


@pytest.fixture(scope="module")
async def owner(api_module, gateway_service, dispatcher):
    tenant = Tenant(*await create_tenant(gateway_service.pool, unique("deliveries")))
    body = {"name": "Web shop", "integration_type": "delivery", "provider": "custom", "config": {}, "credentials": {}}
    async with api_module.post("/api/v1/integrations", json=body, headers=tenant.auth) as response:
        assert response.status == 201, await response.text()
        integration_id = (await response.json())["data"]["id"]

    async def learnt() -> bool:
        return await dispatcher.pool.fetchval(
            "SELECT true FROM webhook_dispatcher.known_integrations WHERE id = $1 AND NOT deleted", integration_id)

    await eventually(learnt, 30, "the dispatcher to learn the integration")
    return tenant, integration_id


async def register(api, owner, receiver, path: str, events: list[str]) -> dict:
    tenant, integration_id = owner
    body = {"integration_id": integration_id, "url": receiver.base + path, "events": events}
    async with api.post("/api/v1/webhooks", json=body, headers=tenant.auth) as response:
        assert response.status == 201, await response.text()
        return (await response.json())["data"]


def order_of(integration_id: int, order_id: int) -> orders.ExternalOrder:
    return orders.ExternalOrder.model_validate({
        "id": order_id, "integration_id": integration_id, "external_id": f"web-{order_id}", "status": "accepted",
        "raw_data": {"id": order_id}, "placed_at": "2026-01-04T18:00:00Z", "customer": {"name": "Ada"},
        "fulfillment": "pickup", "items": [{"name": "Tea", "quantity": 1, "unit_price": "2.50"}],
        "subtotal": "2.50", "tax": "0.00", "tip": "0.00", "total": "2.50", "currency": "USD",
        "created_at": "2026-01-04T18:00:00Z",
    })


def envelope_order(order: orders.ExternalOrder) -> dict:
    """The order as the event carries it (and the API shows it): null fields left out."""
    return order.model_dump(mode="json", exclude_none=True)


async def publish(producer, topic: str, type_: str, payload, tenant_id: str, subject: str) -> Envelope:
    source = "posint/orders" if topic == topics.ORDERS_EVENTS else "posint/integrations"
    envelope = Envelope.wrap(payload, source=source, type=type_, tenantid=tenant_id, subject=subject)
    await kafka.send(producer, topic, envelope, 10)
    return envelope


async def order_event(producer, owner, type_: str = orders.ORDER_INJECTION_FAILED, **fields) -> tuple[Envelope, dict]:
    tenant, integration_id = owner
    order = order_of(integration_id, 1000 + uuid.uuid4().int % 100000)
    model = {orders.ORDER_INJECTION_FAILED: orders.OrderInjectionFailed,
             orders.PAYMENT_COMPLETED: orders.PaymentCompleted}.get(type_, orders.OrderEvent)
    payload = model(tenant_id=tenant.id, integration_id=integration_id, order=order, **fields)
    return await publish(producer, topics.ORDERS_EVENTS, type_, payload, tenant.id, str(order.id)), envelope_order(order)


async def test_events_reach_the_endpoint_signed_with_the_catalog_names(api_module, owner, receiver, producer):
    endpoint = await register(api_module, owner, receiver, "/orders", ["order.injection_failed", "payment.completed",
                                                                       "integration.sync.completed"])
    envelope, order = await order_event(producer, owner, reason="item 'burger' unknown")
    await kafka.send(producer, topics.ORDERS_EVENTS, envelope, 10)  # the same event again: one message
    await order_event(producer, owner, orders.ORDER_CREATED)  # not subscribed
    await order_event(producer, owner, orders.PAYMENT_COMPLETED, amount="2.50", method="card")
    tenant, integration_id = owner
    sync = integrations.IntegrationRef(id=integration_id).model_dump() | {"integration_id": integration_id, "provider": "custom",
                                                                         "completed_at": "2026-01-04T18:00:00Z"}

    class Sync(integrations.IntegrationRef):
        integration_id: int
        provider: str
        completed_at: str

    await publish(producer, topics.INTEGRATIONS_EVENTS, integrations.SYNC_COMPLETED, Sync(**sync), tenant.id, str(integration_id))
    await eventually(lambda: len(receiver.hits["/orders"]) >= 3, 30, "three messages")
    await asyncio.sleep(0.5)  # a duplicate or the unsubscribed event would have arrived by now
    received = [Webhook(endpoint["secret"]).verify(body, headers) for headers, body in receiver.hits["/orders"]]
    by_type = {message["type"]: message for message in received}
    assert sorted(by_type) == ["integration.sync.completed", "order.injection_failed", "payment.completed"]
    assert len(received) == 3
    assert by_type["order.injection_failed"]["data"] == {**order, "reason": "item 'burger' unknown"}
    assert by_type["payment.completed"]["data"]["method"] == "card"
    assert by_type["integration.sync.completed"]["data"] == {"id": integration_id, "integration_id": integration_id,
                                                             "provider": "custom", "completed_at": "2026-01-04T18:00:00Z"}


async def test_rotation_sends_both_signatures(api_module, owner, receiver, producer):
    tenant, _ = owner
    endpoint = await register(api_module, owner, receiver, "/rotate", ["order.injection_failed"])
    async with api_module.post(f"/api/v1/webhooks/{endpoint['id']}/rotate-secret", headers=tenant.auth) as response:
        assert response.status == 200, await response.text()
        rotated = (await response.json())["data"]
    assert rotated["secret"].startswith("whsec_") and rotated["secret"] != endpoint["secret"]
    assert datetime.fromisoformat(rotated["previous_secret_expires_at"]) > datetime.now(timezone.utc) + timedelta(hours=23)
    await order_event(producer, owner, reason="x")
    await eventually(lambda: len(receiver.hits["/rotate"]) == 1, 30)
    headers, body = receiver.hits["/rotate"][0]
    assert len(headers["webhook-signature"].split(" ")) == 2
    assert Webhook(rotated["secret"]).verify(body, headers) == Webhook(endpoint["secret"]).verify(body, headers)


async def test_deliveries_log_retry_and_recover(api_module, owner, receiver, producer):
    tenant, _ = owner
    endpoint = await register(api_module, owner, receiver, "/down", ["order.injection_failed"])
    base = f"/api/v1/webhooks/{endpoint['id']}"
    receiver.answers["/down"] = 500
    since = datetime.now(timezone.utc).isoformat()
    for _ in range(3):
        await order_event(producer, owner, reason="down")
    await eventually(lambda: len(receiver.hits["/down"]) == 6, 30, "each message tried twice")

    async def log(query: str = "") -> tuple[list, str | None]:
        async with api_module.get(f"{base}/deliveries{query}", headers=tenant.auth) as response:
            assert response.status == 200, await response.text()
            return (await response.json())["data"], response.headers.get("Link")

    async def all_failed() -> bool:
        return await owner_messages(api_module, tenant, base) == 6

    await eventually(all_failed, 10, "six attempts logged")
    attempts, _ = await log()
    assert {(row["attempt"], row["status_code"], row["outcome"], row["response_body"]) for row in attempts} == {
        (1, 500, "http_error", "answered 500"), (2, 500, "http_error", "answered 500")}
    assert [row["id"] for row in attempts] == sorted((row["id"] for row in attempts), reverse=True)  # newest first
    first_page, link = await log("?limit=4")
    assert len(first_page) == 4 and link is not None
    rest, _ = await log(f"?limit=4&after={first_page[-1]['id']}")
    assert len(rest) == 2 and {row["id"] for row in first_page} | {row["id"] for row in rest} == {row["id"] for row in attempts}

    receiver.answers["/down"] = 200
    one = attempts[0]["message_id"]
    async with api_module.post(f"{base}/deliveries/{one}/retry", headers=tenant.auth) as response:
        assert response.status == 202, await response.text()
    await eventually(lambda: len(receiver.hits["/down"]) == 7, 30, "the retried message")
    assert receiver.hits["/down"][-1][0]["webhook-id"] == one
    async with api_module.post(f"{base}/deliveries/msg_nothere/retry", headers=tenant.auth) as response:
        assert response.status == 404

    async with api_module.post(f"{base}/recover", json={"since": since}, headers=tenant.auth) as response:
        assert response.status == 202, await response.text()
        assert (await response.json())["data"]["messages"] == 2  # the retried one was delivered
    await eventually(lambda: len(receiver.hits["/down"]) == 9, 30, "the two recovered messages")
    resent = {headers["webhook-id"] for headers, _ in receiver.hits["/down"][7:]}
    assert resent == {row["message_id"] for row in attempts} - {one}
    await asyncio.sleep(0.5)
    assert len(receiver.hits["/down"]) == 9


async def owner_messages(api, tenant, base) -> int:
    async with api.get(f"{base}/deliveries?limit=200", headers=tenant.auth) as response:
        return len((await response.json())["data"])


async def test_bad_input_is_a_422(api_module, owner, receiver):
    tenant, _ = owner
    endpoint = await register(api_module, owner, receiver, "/bad", ["order.injection_failed"])
    async with api_module.post(f"/api/v1/webhooks/{endpoint['id']}/recover", json={"since": "yesterday"},
                               headers=tenant.auth) as response:
        assert response.status == 422
    async with api_module.post(f"/api/v1/webhooks/{endpoint['id']}/deliveries/not-an-id/retry",
                               headers=tenant.auth) as response:
        assert response.status == 422
