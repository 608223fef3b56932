"""Platform cancellations end to end: a platform tells posint (a signed push, or its order list read
by a sync run) that it cancelled an order; the integrations service hands it to the orders service
(``posint.integrations.order-cancelled.v1`` on integrations.events, on the order's key), once per
order: before acceptance the order is ``cancelled``, after it ``cancel_requested`` until the POS
(the reference POS here) confirms, then ``cancelled``. Real gateway, services, broker, Postgres,
the sandbox platforms over HTTP on 127.0.0.1."""
from __future__ import annotations

import json
import uuid
from datetime import datetime, timezone

import pytest
from standardwebhooks import Webhook

from gateway.tenants import create_tenant
from posint_common.contracts import inbound, orders as contract, topics
from posint_common.testing import eventually, read_topic, unique
from sandbox.platforms.demo import DEMO_CREDENTIALS, demo_config
from sandbox.platforms.server import Sandbox

from .conftest import Tenant, bearer
from .test_external_orders import get, listed, order, push
from .test_orders_accept import history, integration, pos_control, post, reference_pos  # noqa: F401 (fixtures)
from .test_sync_runs import finished, sync

DELIVERY = ("custom", "doordash", "ubereats", "grubhub")


@pytest.fixture
async def tenant(gateway_service, integrations_service, orders_service) -> Tenant:
    return Tenant(*await create_tenant(gateway_service.pool, unique("cancellations")))


@pytest.fixture(scope="module")
async def sandbox():
    async with Sandbox() as running:
        yield running


async def signed(api, made: dict, document: dict, msg_id: str | None = None) -> tuple[int, dict]:
    """A Standard Webhooks push to a custom integration; ``msg_id`` again is a redelivery."""
    body, msg_id, at = json.dumps(document), msg_id or f"msg_{uuid.uuid4().hex}", datetime.now(timezone.utc)
    headers = {"Content-Type": "application/json", "webhook-id": msg_id, "webhook-timestamp": str(int(at.timestamp())),
               "webhook-signature": Webhook(made["inbound_secret"]).sign(msg_id, at, body)}
    async with api.post(f"/api/v1/integrations/{made['id']}/inbound", data=body.encode(), headers=headers) as response:
        return response.status, await response.json()


async def detail(api, tenant: Tenant, order_id: int, status: str) -> dict:
    """The order once it is in ``status``."""
    seen: dict = {}

    async def reached() -> bool:
        code, body, _ = await get(api, tenant, f"/api/v1/external-orders/{order_id}")
        assert code == 200, body
        seen.update(body["data"])
        return body["data"]["status"] == status

    await eventually(reached, 30, f"order {order_id} to be {status}")
    return seen


def moves(shown: dict) -> list[tuple]:
    return [(c["from"], c["to"], c["source"]) for c in shown["status_history"] if c["from"] != c["to"]]


async def cancellations_on_the_key(infra, integration_id: int, external_id: str, expected: int) -> list[str]:
    """The types of the order's hand-over events on integrations.events, up to the ``expected``-th."""
    key = inbound.order_subject(integration_id, external_id)
    found = await read_topic(infra.bootstrap_servers, topics.INTEGRATIONS_EVENTS, expected,
                             match=lambda e: e.subject == key)
    return [envelope.type for envelope in found[:expected]]


async def test_a_custom_cancellation_cancels_a_received_order_once(api, infra, tenant, orders_service):
    made = await integration(api, tenant, orders_service)
    await push(api, made, order())
    [shown] = await listed(api, tenant, 1)
    cancellation = {"external_id": shown["external_id"], "status": "cancelled", "reason": "customer changed their mind"}

    status, body = await signed(api, made, cancellation, "msg_cancel_1")
    assert status == 202, body
    assert (body["data"]["external_id"], body["data"]["status"]) == (shown["external_id"], "cancelled")
    cancelled = await detail(api, tenant, shown["id"], "cancelled")
    last = cancelled["status_history"][-1]
    assert (last["from"], last["to"], last["source"], last["reason"]) == (
        "received", "cancelled", "platform", "customer changed their mind")
    [event] = await read_topic(infra.bootstrap_servers, topics.ORDERS_EVENTS, 1,
                               match=lambda e: e.type == contract.ORDER_CANCELLED and e.subject == str(shown["id"]))
    assert (event.data["source"], event.data["reason"], event.tenantid) == ("platform", "customer changed their mind", tenant.id)

    for msg_id in ("msg_cancel_1", None):  # the same delivery again, and the same cancellation in a new message
        status, body = await signed(api, made, cancellation, msg_id)
        assert (status, body["data"]["status"]) == (200, "duplicate"), body
    await push(api, made, order(shown["external_id"], notes="a barrier: handed over behind the repeats"), expect=200)
    await eventually(lambda: _updated(api, tenant, shown["id"]), 30, "the update behind the repeats")
    assert await cancellations_on_the_key(infra, made["id"], shown["external_id"], 3) == [
        inbound.ORDER_RECEIVED, contract.PLATFORM_ORDER_CANCELLED, inbound.ORDER_RECEIVED]
    final = (await get(api, tenant, f"/api/v1/external-orders/{shown['id']}"))[1]["data"]
    assert moves(final) == [(None, "received", "platform"), ("received", "cancelled", "platform")]
    assert [c["to"] for c in final["status_history"]] == ["received", "cancelled", "cancelled"]  # + the update line


async def _updated(api, tenant: Tenant, order_id: int) -> bool:
    _, body, _ = await get(api, tenant, f"/api/v1/external-orders/{order_id}")
    return body["data"]["notes"] == "a barrier: handed over behind the repeats"


async def test_a_cancellation_after_acceptance_waits_for_the_pos(api, tenant, orders_service, pos_control):
    made = await integration(api, tenant, orders_service)
    await push(api, made, order())
    [shown] = await listed(api, tenant, 1)
    status, body = await post(api, tenant, f"{shown['id']}/accept")
    assert (status, body["data"]["injection_status"]) == (200, "injected"), body

    status, body = await signed(api, made, {"external_id": shown["external_id"], "status": "cancelled"})
    assert (status, body["data"]["status"]) == (202, "cancelled"), body
    # The reference POS confirms the cancel-order it is sent: cancel_requested, then cancelled.
    cancelled = await detail(api, tenant, shown["id"], "cancelled")
    assert moves(cancelled) == [(None, "received", "platform"), ("received", "accepted", "merchant"),
                                ("accepted", "cancel_requested", "platform"), ("cancel_requested", "cancelled", "pos")]
    [requested] = [c for c in cancelled["status_history"] if c["to"] == "cancel_requested"]
    assert requested["reason"] == "cancelled by the platform"  # the platform gave none


async def test_a_cancellation_of_an_unknown_order_or_malformed_is_refused(api, tenant, orders_service, integrations_service):
    made = await integration(api, tenant, orders_service)
    status, body = await signed(api, made, {"external_id": "never-sent", "status": "cancelled"})
    assert (status, body["type"].rsplit("/", 1)[-1]) == (404, "unknown-order"), body
    for bad in ({"external_id": "x", "status": "open"}, {"external_id": "x", "status": "cancelled", "extra": 1},
                {"status": "cancelled"}, {"external_id": "x", "status": "cancelled", "reason": 5}):
        status, body = await signed(api, made, bad)
        assert status == 400, (bad, body)


async def connect(api, tenant: Tenant, sandbox: Sandbox, provider: str) -> dict:
    document = {"name": provider, "integration_type": "delivery", "provider": provider,
                "config": demo_config(provider, sandbox.url), "credentials": DEMO_CREDENTIALS[provider]}
    async with api.post("/api/v1/integrations", json=document, headers=bearer(tenant)) as response:
        assert response.status == 201, await response.text()
        return (await response.json())["data"]


@pytest.mark.parametrize("provider", DELIVERY)
async def test_each_platforms_own_cancellation_push(api, tenant, sandbox, provider, gateway_service):
    fake = sandbox[provider]
    fake.reset()
    made = await connect(api, tenant, sandbox, provider)
    url = f"http://127.0.0.1:{gateway_service.ports['http']}/api/v1/integrations/{made['id']}/inbound"
    pushed = await fake.push(url, made["inbound_secret"])
    assert pushed["status"] == 202, pushed
    [shown] = await listed(api, tenant, 1)

    result = await fake.push_cancel(url, made["inbound_secret"], pushed["order_id"], "driver unavailable")
    assert result["status"] == 202 and json.loads(result["response"])["data"]["status"] == "cancelled", result
    cancelled = await detail(api, tenant, shown["id"], "cancelled")
    assert moves(cancelled)[-1] == ("received", "cancelled", "platform")
    assert cancelled["status_history"][-1]["reason"] == "driver unavailable"
    again = await fake.push_cancel(url, made["inbound_secret"], pushed["order_id"], "driver unavailable")
    assert again["status"] == 200 and json.loads(again["response"])["data"]["status"] == "duplicate", again


@pytest.mark.parametrize("provider", DELIVERY)
async def test_a_sync_that_lists_a_cancelled_order_cancels_it(api, infra, tenant, sandbox, provider):
    fake = sandbox[provider]
    fake.reset()
    made = await connect(api, tenant, sandbox, provider)
    external_id = fake.order_id(fake.add_order())
    run = await finished(api, tenant, (await sync(api, tenant, made["id"]))["id"])
    assert run["counts"]["created"] == 1, run
    [shown] = await listed(api, tenant, 1)

    fake.cancel_order(external_id, "out of buns")
    run = await finished(api, tenant, (await sync(api, tenant, made["id"]))["id"])
    assert (run["status"], run["counts"]["updated"]) == ("succeeded", 1), run
    cancelled = await detail(api, tenant, shown["id"], "cancelled")
    assert moves(cancelled)[-1] == ("received", "cancelled", "platform")
    assert cancelled["status_history"][-1]["reason"] == "out of buns"

    # Listed again: a duplicate, nothing handed over (the cancellation and the counts share a transaction).
    run = await finished(api, tenant, (await sync(api, tenant, made["id"]))["id"])
    assert (run["counts"]["duplicates"], run["counts"]["updated"]) == (1, 0), run
    assert await cancellations_on_the_key(infra, made["id"], external_id, 2) == [
        inbound.ORDER_RECEIVED, contract.PLATFORM_ORDER_CANCELLED]
