"""What the orders service's events ask of the platforms, end to end: the integrations service
consumes ``orders.events`` (its own group, with the inbox), sends the order's status back to the
sandbox's fake DoorDash over real HTTP (retrying through 500s until the platform's deadline, in
order per order) and reports each outcome as ``order-status-pushed``; a completed order is booked
once in the tenant's fake QuickBooks ledger, however often the event comes or a call times out.

The events are published here as the orders service publishes them (its contract, on its topic),
so each case is exact and fast."""
from __future__ import annotations

import uuid

import pytest
from aiokafka import AIOKafkaProducer

from gateway.tenants import create_tenant
from integrations.adapters import inbound_repository
from integrations.service_layer.secrets import Secrets
from posint_common.contracts import integrations as contract, orders, topics
from posint_common.envelope import Envelope
from posint_common.testing import eventually, read_topic, unique
from sandbox.platforms.demo import DEMO_CREDENTIALS, demo_config
from sandbox.platforms.faults import Fault
from sandbox.platforms.server import Sandbox

from .conftest import Tenant, bearer

API = "/api/v1"


@pytest.fixture(scope="module")
async def sandbox():
    async with Sandbox() as running:
        yield running


@pytest.fixture
async def tenant(gateway_service, integrations_service):
    return Tenant(*await create_tenant(gateway_service.pool, unique("tenant-push")))


@pytest.fixture
async def producer(infra):
    producer = AIOKafkaProducer(bootstrap_servers=infra.bootstrap_servers)
    await producer.start()
    yield producer
    await producer.stop()


async def connect(api, tenant: Tenant, sandbox: Sandbox, provider: str, kind: str = "delivery") -> int:
    sandbox[provider].reset()
    document = {"name": provider, "integration_type": kind, "provider": provider,
                "config": demo_config(provider, sandbox.url), "credentials": DEMO_CREDENTIALS[provider]}
    async with api.post(f"{API}/integrations", json=document, headers=bearer(tenant)) as response:
        assert response.status == 201, await response.text()
        return (await response.json())["data"]["id"]


def order(integration_id: int, external_id: str, order_id: int, status: str = "accepted") -> dict:
    return {"id": order_id, "integration_id": integration_id, "external_id": external_id, "status": status,
            "raw_data": {"id": external_id}, "placed_at": "2026-01-04T18:00:00Z", "customer": {"name": "Ada"},
            "fulfillment": "pickup", "items": [{"external_id": "tea", "name": "Tea", "quantity": 2, "unit_price": "2.50"}],
            "subtotal": "5.00", "tax": "0.40", "tip": "1.00", "total": "6.40", "currency": "USD",
            "created_at": "2026-01-04T18:00:01Z"}


async def publish(producer, tenant: Tenant, type: str, data: dict, envelope_id: str | None = None) -> Envelope:
    """An event as the orders service emits it (key = order id)."""
    model = {orders.ORDER_ACCEPTED: orders.OrderAccepted, orders.ORDER_REJECTED: orders.OrderRejected,
             orders.ORDER_CANCELLED: orders.OrderCancelled}.get(type, orders.OrderEvent)
    payload = model.model_validate({"tenant_id": tenant.id, **data})
    envelope = Envelope.wrap(payload, source="posint/orders", type=type, subject=str(data["order"]["id"]),
                             tenantid=tenant.id, correlationid=f"req-{uuid.uuid4().hex}",
                             **({"id": envelope_id} if envelope_id else {}))
    await producer.send_and_wait(topics.ORDERS_EVENTS, envelope.value(), key=envelope.key, headers=envelope.headers())
    return envelope


async def outcomes(bootstrap_servers: str, integration_id: int, external_id: str, expected: int) -> list[dict]:
    found = await read_topic(bootstrap_servers, topics.INTEGRATIONS_EVENTS, expected,
                             match=lambda e: e.type == contract.ORDER_STATUS_PUSHED
                             and e.subject == f"{integration_id}/{external_id}")
    return [e.data for e in found]


async def test_the_status_goes_back_to_the_platform_in_order(api, tenant, sandbox, producer, infra):
    doordash = sandbox["doordash"]
    integration_id = await connect(api, tenant, sandbox, "doordash")
    external_id, order_id = unique("DD"), 9_000_001
    data = {"integration_id": integration_id, "order": order(integration_id, external_id, order_id)}
    await publish(producer, tenant, orders.ORDER_ACCEPTED, {**data, "prep_time_minutes": 20,
                                                              "accepted_at": "2026-01-04T18:01:00Z"})
    await publish(producer, tenant, orders.ORDER_READY, {**data, "order": order(integration_id, external_id, order_id, "ready")})

    await eventually(lambda: len(doordash.status_updates) == 2, 30, "both status updates at the platform")
    accepted, ready = doordash.status_updates
    assert accepted.method == "PATCH" and accepted.path.endswith(f"/orders/{external_id}")
    assert accepted.body["order_status"] == "success" and accepted.body["prep_time"]
    assert ready.path.endswith(f"/orders/{external_id}/events/order_ready_for_pickup")
    reported = await outcomes(infra.bootstrap_servers, integration_id, external_id, 2)
    assert [(event["status"], event["outcome"], event["order_id"]) for event in reported] == [
        ("accepted", "sent", order_id), ("ready", "sent", order_id)]


async def test_a_busy_platform_is_retried_and_a_refusal_reported(api, tenant, sandbox, producer, infra):
    doordash = sandbox["doordash"]
    integration_id = await connect(api, tenant, sandbox, "doordash")
    external_id, order_id = unique("DD"), 9_000_002
    doordash.faults.add(Fault("500", times=3, path=f"/orders/{external_id}"))  # 2 tries per call: the 2nd call gets through
    data = {"integration_id": integration_id, "order": order(integration_id, external_id, order_id, "rejected")}
    await publish(producer, tenant, orders.ORDER_REJECTED, {**data, "reason_code": "STORE_CLOSED",
                                                              "rejected_at": "2026-01-04T18:01:00Z"})
    [sent] = await outcomes(infra.bootstrap_servers, integration_id, external_id, 1)
    assert (sent["status"], sent["outcome"], sent["attempts"]) == ("rejected", "sent", 2)
    [update] = doordash.status_updates
    assert update.body["order_status"] == "fail"

    # A platform that keeps failing: given up at its deadline (STATUS_PUSH_DEADLINE_S, 4 s here), reported.
    external_id, order_id = unique("DD"), 9_000_003
    doordash.faults.add(Fault("500", times=1000, path=f"/orders/{external_id}"))
    data = {"integration_id": integration_id, "order": order(integration_id, external_id, order_id, "rejected")}
    await publish(producer, tenant, orders.ORDER_REJECTED, {**data, "reason_code": "STORE_CLOSED",
                                                              "rejected_at": "2026-01-04T18:01:00Z"})
    [failed] = await outcomes(infra.bootstrap_servers, integration_id, external_id, 1)
    assert failed["outcome"] == "failed" and "deadline" in failed["error"] and failed["attempts"] > 1, failed


async def test_a_cancellation_by_the_platform_is_not_sent_back(api, tenant, sandbox, producer, integrations_service):
    integration_id = await connect(api, tenant, sandbox, "doordash")
    external_id = unique("DD")
    data = {"integration_id": integration_id, "order": order(integration_id, external_id, 9_000_004, "cancelled")}
    await publish(producer, tenant, orders.ORDER_CANCELLED, {**data, "source": "platform", "reason": "customer"})
    mark = await publish(producer, tenant, orders.ORDER_CANCELLED, {**data, "source": "merchant", "reason": "out of stock"})
    await eventually(lambda: len(sandbox["doordash"].status_updates) == 1, 30, "the merchant's cancellation at the platform")
    assert sandbox["doordash"].status_updates[0].path.endswith("/cancellation")
    async with integrations_service.pool.acquire() as conn:
        kinds = await conn.fetch("SELECT status, correlation_id FROM platform_pushes WHERE integration_id = $1", integration_id)
    assert [(row["status"], row["correlation_id"]) for row in kinds] == [("cancelled", mark.correlationid)]
    assert mark.correlationid.startswith("req-")  # the request that caused it is followed to the platform call


async def test_a_completed_order_is_booked_once(api, tenant, sandbox, producer, integrations_service):
    ledger = sandbox["quickbooks"]
    delivery_id = await connect(api, tenant, sandbox, "doordash")
    ledger_id = await connect(api, tenant, sandbox, "quickbooks", "accounting")
    external_id, order_id = unique("DD"), 9_000_005
    data = {"integration_id": delivery_id, "order": order(delivery_id, external_id, order_id, "completed")}
    # The ledger books it but its answer is lost (later than the client waits): the retry carries the same
    # requestid, and QuickBooks answers the first receipt instead of booking again.
    ledger.faults.add(Fault("lost_answer", times=2, path="/salesreceipt", delay_s=3))  # both tries of the first call
    first = await publish(producer, tenant, orders.ORDER_COMPLETED, data)
    await publish(producer, tenant, orders.ORDER_COMPLETED, data, envelope_id=first.id)  # redelivered
    await publish(producer, tenant, orders.ORDER_COMPLETED, data)  # emitted twice

    async def booked() -> bool:
        async with integrations_service.pool.acquire() as conn:
            return await conn.fetchval("SELECT state FROM platform_pushes WHERE integration_id = $1 AND kind = 'sale'",
                                       ledger_id) == "done"

    await eventually(booked, 30, "the sale booked")
    assert len(ledger.ledger) == 1  # one sales receipt, however often it was asked for
    assert [kind for kind, _ in ledger.faults.injected] == ["lost_answer", "lost_answer"]
    requests = [path for method, path in ledger.requests if path.endswith("/salesreceipt")]
    assert len(requests) >= 3  # asked again, by the next call, after both answers were lost
    async with integrations_service.pool.acquire() as conn:
        rows = await conn.fetch("SELECT order_id, ledger_id, idempotency_key, attempts FROM platform_pushes"
                                " WHERE integration_id = $1", ledger_id)
    [row] = rows
    assert row["order_id"] == order_id and row["idempotency_key"] == f"posint-order-{order_id}"
    assert row["ledger_id"] == str(ledger.by_key[row["idempotency_key"]]["SalesReceipt"]["Id"])


async def test_the_rotated_refresh_token_is_kept_and_a_ledger_sync_retries_failed_bookings(
        api, tenant, sandbox, producer, integrations_service):
    ledger = sandbox["quickbooks"]
    delivery_id = await connect(api, tenant, sandbox, "doordash")
    ledger_id = await connect(api, tenant, sandbox, "quickbooks", "accounting")
    ledger.faults.add(Fault("malformed", path="/salesreceipt"))  # not understood: failed at once, not retried
    external_id, order_id = unique("DD"), 9_000_006
    await publish(producer, tenant, orders.ORDER_COMPLETED,
                  {"integration_id": delivery_id, "order": order(delivery_id, external_id, order_id, "completed")})

    async def state() -> str | None:
        async with integrations_service.pool.acquire() as conn:
            return await conn.fetchval("SELECT state FROM platform_pushes WHERE integration_id = $1", ledger_id)

    await eventually(lambda: state_is(state, "failed"), 30, "the booking to fail")
    assert ledger.ledger == []

    # QuickBooks rotated the refresh token when the client refreshed: the new one is what is stored now.
    async with integrations_service.pool.acquire() as conn:
        integration = await inbound_repository.live_integration(conn, ledger_id)
    stored = Secrets(integrations_service.settings.key_ring).credentials(integration)
    assert stored["refresh_token"] in ledger.refresh_tokens and stored["refresh_token"] != DEMO_CREDENTIALS["quickbooks"]["refresh_token"]
    async with api.get(f"{API}/integrations/{ledger_id}", headers=bearer(tenant)) as response:
        assert (await response.json())["data"]["health"]["token_expires_at"] is not None

    # A manual sync of the ledger tries its failed bookings again.
    async with api.post(f"{API}/integrations/{ledger_id}/sync", headers=bearer(tenant)) as response:
        assert response.status == 200
    await eventually(lambda: state_is(state, "done"), 30, "the booking to go through")
    assert len(ledger.ledger) == 1


async def state_is(read, wanted: str) -> bool:
    return await read() == wanted


async def test_an_order_synced_and_accepted_through_the_api_is_confirmed_at_the_platform(
        api, tenant, sandbox, orders_service, infra):
    """The whole way with the real orders service: a sync brings the order in, the orders service files
    it, the restaurant accepts it (POST .../accept), and its ``order.accepted`` reaches the platform."""
    doordash = sandbox["doordash"]
    integration_id = await connect(api, tenant, sandbox, "doordash")
    external_id = doordash.order_id(doordash.add_order())
    async with api.post(f"{API}/integrations/{integration_id}/sync", headers=bearer(tenant)) as response:
        assert response.status == 200
    filed: list = []

    async def listed() -> bool:
        async with api.get(f"{API}/external-orders?integration_id={integration_id}", headers=bearer(tenant)) as response:
            filed[:] = (await response.json())["data"]
        return bool(filed)

    await eventually(listed, 30, "the synced order in GET /external-orders")
    async with api.post(f"{API}/external-orders/{filed[0]['id']}/accept", json={"prep_time_minutes": 25},
                        headers=bearer(tenant)) as response:
        assert response.status == 200, await response.text()
    await eventually(lambda: any(update.path.endswith(f"/orders/{external_id}") for update in doordash.status_updates),
                     30, "the acceptance at the platform")
    [sent] = await outcomes(infra.bootstrap_servers, integration_id, external_id, 1)
    assert (sent["status"], sent["outcome"], sent["order_id"]) == ("accepted", "sent", filed[0]["id"])
