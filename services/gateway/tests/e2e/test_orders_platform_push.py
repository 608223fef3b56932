"""The outcome of telling the platform an order's status, shown on the order, end to end: an order
synced from the sandbox's fake DoorDash (real integrations service, real HTTP on 127.0.0.1), rejected
through the gateway; the integrations service sends the status back to the platform and reports
``order-status-pushed`` on integrations.events; the orders service records it and
``GET /external-orders/{id}`` shows it as ``platform_sync``. A platform that keeps failing is given
up at its deadline and shown as ``failed`` with the error; a report arriving late (older than the
one shown) or for an unknown order changes nothing."""
from __future__ import annotations

import uuid
from datetime import datetime, timedelta

import pytest
from aiokafka import AIOKafkaProducer

from gateway.tenants import create_tenant
from posint_common import inbox
from posint_common.contracts import integrations as contract, topics
from posint_common.envelope import Envelope
from posint_common.testing import eventually, unique
from sandbox.platforms.faults import Fault
from sandbox.platforms.server import Sandbox

from .conftest import Tenant, bearer
from .test_sync_runs import connect_doordash, finished, sync

API = "/api/v1"


@pytest.fixture(scope="module")
async def sandbox():
    async with Sandbox() as running:
        yield running


@pytest.fixture
async def tenant(gateway_service, integrations_service, orders_service):
    return Tenant(*await create_tenant(gateway_service.pool, unique("tenant-pushed")))


@pytest.fixture
async def producer(infra):
    producer = AIOKafkaProducer(bootstrap_servers=infra.bootstrap_servers)
    await producer.start()
    yield producer
    await producer.stop()


async def get(api, tenant: Tenant, order_id: int) -> dict:
    async with api.get(f"{API}/external-orders/{order_id}", headers=bearer(tenant)) as response:
        assert response.status == 200, await response.text()
        return (await response.json())["data"]


async def synced_orders(api, tenant: Tenant, sandbox: Sandbox, count: int) -> tuple[int, list[dict]]:
    """A DoorDash integration at the fake platform and ``count`` orders synced from it, received."""
    doordash = sandbox["doordash"]
    doordash.reset()
    integration_id = await connect_doordash(api, tenant, sandbox)
    external_ids = [doordash.order_id(doordash.add_order()) for _ in range(count)]
    run = await finished(api, tenant, (await sync(api, tenant, integration_id))["id"])
    assert run["status"] == "succeeded", run
    found: list[dict] = []

    async def listed() -> bool:
        async with api.get(f"{API}/external-orders?integration_id={integration_id}", headers=bearer(tenant)) as response:
            found[:] = (await response.json())["data"]
        return len(found) == count

    await eventually(listed, 30, "the synced orders at the orders service")
    by_external = {order["external_id"]: order for order in found}
    return integration_id, [by_external[external_id] for external_id in external_ids]


async def reject(api, tenant: Tenant, order_id: int) -> None:
    async with api.post(f"{API}/external-orders/{order_id}/reject", json={"reason_code": "STORE_CLOSED"},
                        headers=bearer(tenant)) as response:
        assert response.status == 200, await response.text()


async def shown(api, tenant: Tenant, order_id: int, what: str) -> dict:
    """The order once it shows a platform_sync."""
    seen: dict = {}

    async def has_sync() -> bool:
        seen.update(await get(api, tenant, order_id))
        return seen.get("platform_sync") is not None

    await eventually(has_sync, 30, what)
    return seen


async def test_the_platforms_answer_is_shown_on_the_order(api, tenant, sandbox, producer, orders_service):
    doordash = sandbox["doordash"]
    integration_id, [sent, refused] = await synced_orders(api, tenant, sandbox, 2)
    before = await get(api, tenant, sent["id"])
    assert before["platform_sync"] is None  # nothing told the platform yet
    assert "platform_sync" not in sent  # the list keeps its shape

    await reject(api, tenant, sent["id"])
    order = await shown(api, tenant, sent["id"], "the rejection's push outcome on the order")
    sync_state = order["platform_sync"]
    assert (sync_state["status"], sync_state["outcome"], sync_state["attempts"], sync_state["error"]) == (
        "rejected", "sent", 1, None)
    assert sync_state["at"].endswith("Z")
    assert any(u.path.endswith(f"/orders/{sent['external_id']}") for u in doordash.status_updates)
    # Not a transition: the history is the order's status moves only.
    assert [(c["from"], c["to"]) for c in order["status_history"]] == [(None, "received"), ("received", "rejected")]

    # The platform keeps failing: given up at its deadline (STATUS_PUSH_DEADLINE_S, 4 s here), shown as failed.
    doordash.faults.add(Fault("500", times=1000, path=f"/orders/{refused['external_id']}"))
    await reject(api, tenant, refused["id"])
    order = await shown(api, tenant, refused["id"], "the failed push on the order")
    sync_state = order["platform_sync"]
    assert (sync_state["status"], sync_state["outcome"]) == ("rejected", "failed"), sync_state
    assert "deadline" in sync_state["error"] and sync_state["attempts"] > 1, sync_state
    doordash.faults.clear()

    # A report older than the one shown (out of order) changes nothing; one for an unknown order is dropped.
    shown_at = datetime.fromisoformat(sync_state["at"].replace("Z", "+00:00"))
    late = await publish(producer, tenant, integration_id, refused, status="accepted", outcome="sent",
                         finished_at=shown_at - timedelta(seconds=5))
    unknown = await publish(producer, tenant, integration_id, {"id": 987_654_321, "external_id": "nope"},
                            status="accepted", outcome="sent", finished_at=shown_at)
    await eventually(lambda: handled(orders_service, late, unknown), 30, "both reports handled")
    assert (await get(api, tenant, refused["id"]))["platform_sync"] == sync_state


async def publish(producer, tenant: Tenant, integration_id: int, order: dict, *, status: str, outcome: str,
                  finished_at: datetime) -> Envelope:
    """A report as the integrations service emits it (key ``<integration id>/<external id>``)."""
    event = contract.OrderStatusPushed(integration_id=integration_id, provider="doordash", order_id=order["id"],
                                       external_id=order["external_id"], status=status, outcome=outcome, attempts=1,
                                       finished_at=finished_at)
    envelope = Envelope.wrap(event, source="posint/integrations", type=contract.ORDER_STATUS_PUSHED,
                             subject=f"{integration_id}/{order['external_id']}", tenantid=tenant.id,
                             correlationid=f"req-{uuid.uuid4().hex}")
    await producer.send_and_wait(topics.INTEGRATIONS_EVENTS, envelope.value(), key=envelope.key, headers=envelope.headers())
    return envelope


async def handled(orders_service, *envelopes: Envelope) -> bool:
    """The reports went through the orders service's inbox: their effect (or none) is committed."""
    keys = [inbox.message_key(envelope) for envelope in envelopes]
    return await orders_service.pool.fetchval(
        "SELECT count(*) FROM orders.inbox WHERE consumer = 'orders.events' AND message_id = ANY($1)", keys) == len(keys)
