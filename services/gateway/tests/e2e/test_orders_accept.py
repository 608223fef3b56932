"""Accept with POS injection, end to end: orders pushed through the signed inbound endpoint, accepted
through the real gateway, injected by the reference POS (sandbox.pos) over pos.orders /
pos.order-events, the POS's answers applied; deadlines, auto-accept, platform cancellations and the
merchant's ready / complete / cancel / retry-injection."""
from __future__ import annotations

import asyncio
from datetime import datetime

import aiohttp
import pytest

from gateway.tenants import create_tenant
from posint_common import kafka
from posint_common.contracts import orders as contract, pos, topics
from posint_common.envelope import Envelope
from posint_common.testing import eventually, read_topic, unique

from sandbox.pos.app import ReferencePos
from sandbox.pos.settings import PosSettings

from .conftest import Tenant, bearer
from .test_external_orders import get, listed, order, push


@pytest.fixture(scope="module")
async def reference_pos(infra):
    reference = ReferencePos(infra.settings(PosSettings, pos_control_port=0, pos_group=unique("pos.reference"),
                                            kafka_fetch_wait_idle_ms=100))
    await reference.start()
    await eventually(reference.joined.is_set, 30, "the reference POS to join")
    yield reference
    await reference.stop()


@pytest.fixture
async def pos_control(reference_pos):
    """The POS's control API, its behaviour reset for each test."""
    base = f"http://127.0.0.1:{reference_pos.port}"
    async with aiohttp.ClientSession(base_url=base) as session:
        async with session.put("/behaviour", json={"delay_ms": 0, "fail_reason": None, "fail_times": None}) as response:
            assert response.status == 200
        yield session


@pytest.fixture
async def tenant(gateway_service, integrations_service, orders_service) -> Tenant:
    return Tenant(*await create_tenant(gateway_service.pool, unique("accept")))


async def integration(api, tenant: Tenant, orders_service, **config) -> dict:
    """A custom integration whose settings the orders service has learnt (from integration-created)."""
    document = {"name": "web", "integration_type": "delivery", "provider": "custom", "config": config, "credentials": {}}
    async with api.post("/api/v1/integrations", json=document, headers=bearer(tenant)) as response:
        assert response.status == 201, await response.text()
        made = (await response.json())["data"]
    await eventually(lambda: orders_service.pool.fetchval(
        "SELECT count(*) = 1 FROM orders.integration_settings WHERE integration_id = $1", made["id"]),
        what="orders to learn the integration")
    return made


async def received(api, tenant: Tenant, made: dict, count: int = 1) -> list[dict]:
    for _ in range(count):
        await push(api, made, order())
    return await listed(api, tenant, count)


async def post(api, tenant: Tenant, path: str, body: dict | None = None) -> tuple[int, dict]:
    async with api.post(f"/api/v1/external-orders/{path}", json=body, headers=bearer(tenant)) as response:
        return response.status, await response.json()


async def history(api, tenant: Tenant, order_id: int) -> list[tuple]:
    _, detail, _ = await get(api, tenant, f"/api/v1/external-orders/{order_id}")
    return [(c["from"], c["to"], c["source"]) for c in detail["data"]["status_history"] if c["from"] != c["to"]]


async def injections(infra, order_id: int, expected: int = 1) -> list[Envelope]:
    return await read_topic(infra.bootstrap_servers, topics.POS_ORDERS, expected,
                            match=lambda e: e.type == pos.INJECT_ORDER and e.subject == str(order_id))


async def events(infra, order_id: int, type: str, expected: int = 1) -> list[Envelope]:
    return await read_topic(infra.bootstrap_servers, topics.ORDERS_EVENTS, expected,
                            match=lambda e: e.type == type and e.subject == str(order_id))


async def drained(orders_service) -> None:
    await eventually(lambda: orders_service.pool.fetchval("SELECT count(*) = 0 FROM orders.outbox"), what="orders outbox")


async def test_accept_answers_injected_with_the_pos_order_number(api, infra, tenant, orders_service, pos_control):
    made = await integration(api, tenant, orders_service, prep_time_minutes=25)
    [first, second] = await received(api, tenant, made, 2)

    status, body = await post(api, tenant, f"{first['id']}/accept", {"prep_time_minutes": 20})
    assert status == 200, body
    shown = body["data"]
    assert (shown["status"], shown["injection_status"], shown["pos_order_id"]) == ("accepted", "injected", f"P{first['id']:06d}-1")
    assert list(shown)[:5] == ["id", "integration_id", "external_id", "status", "raw_data"]
    assert [(c["from"], c["to"], c["source"]) for c in shown["status_history"]][:2] == [
        (None, "received", "platform"), ("received", "accepted", "merchant")]

    [injection] = await injections(infra, first["id"])
    assert (injection.subject, injection.tenantid, injection.source) == (str(first["id"]), tenant.id, "posint/orders")
    command = pos.InjectOrder.model_validate(injection.data)
    assert (command.prep_time_minutes, command.attempt, command.external_id) == (20, 1, first["external_id"])
    assert str(command.order.total) == first["total"]
    [accepted] = await events(infra, first["id"], contract.ORDER_ACCEPTED)
    assert accepted.data["prep_time_minutes"] == 20 and accepted.data["order"]["status"] == "accepted"
    [injected] = await events(infra, first["id"], contract.ORDER_INJECTED)
    assert injected.data["order"]["pos_order_id"] == shown["pos_order_id"] and injected.tenantid == tenant.id

    status, again = await post(api, tenant, f"{first['id']}/accept")  # took effect already: same order, nothing new
    assert status == 200 and again["data"]["pos_order_id"] == shown["pos_order_id"]

    status, body = await post(api, tenant, f"{second['id']}/accept")  # no body: the integration's prep time
    assert status == 200 and body["data"]["injection_status"] == "injected"
    [injection] = await injections(infra, second["id"])
    assert injection.data["prep_time_minutes"] == 25

    assert (await post(api, tenant, f"{first['id']}/ready"))[0] == 200
    status, body = await post(api, tenant, f"{first['id']}/complete")
    assert (status, body["data"]["status"]) == (200, "completed")
    await events(infra, first["id"], contract.ORDER_READY)
    await events(infra, first["id"], contract.ORDER_COMPLETED)
    status, refused = await post(api, tenant, f"{first['id']}/accept")
    assert (status, refused["current_status"], refused["allowed_actions"]) == (409, "completed", [])

    await drained(orders_service)
    assert len(await injections(infra, first["id"])) == 1  # the repeated accept injected nothing


async def test_accept_validates_its_body_and_refuses_what_the_table_refuses(api, tenant, orders_service, pos_control):
    made = await integration(api, tenant, orders_service)
    [shown] = await received(api, tenant, made)
    for bad in ({"prep_time_minutes": 0}, {"prep_time_minutes": 181}, {"prep_time_minutes": "5"}, {"extra": 1}):
        status, body = await post(api, tenant, f"{shown['id']}/accept", bad)
        assert status == 422, (bad, body)
    status, body = await post(api, tenant, f"{shown['id']}/reject", {"reason_code": "TOO_BUSY"})
    assert status == 200
    status, body = await post(api, tenant, f"{shown['id']}/accept")
    assert (status, body["current_status"], body["allowed_actions"]) == (409, "rejected", [])
    status, body = await post(api, tenant, f"{shown['id']}/retry-injection")
    assert (status, body["current_status"]) == (409, "rejected")
    assert (await post(api, tenant, "999999999/accept"))[0] == 404


async def test_a_pos_that_refuses_then_a_retry_injection(api, infra, tenant, orders_service, pos_control):
    made = await integration(api, tenant, orders_service)
    [shown] = await received(api, tenant, made)
    async with pos_control.put("/behaviour", json={"fail_reason": "item 86 unknown", "fail_times": 1}) as response:
        assert response.status == 200

    status, body = await post(api, tenant, f"{shown['id']}/accept")
    assert status == 200, body
    assert (body["data"]["status"], body["data"]["injection_status"], body["data"]["injection_error"]) == (
        "accepted", "failed", "item 86 unknown")
    [failed] = await events(infra, shown["id"], contract.ORDER_INJECTION_FAILED)
    assert failed.data["reason"] == "item 86 unknown"

    status, body = await post(api, tenant, f"{shown['id']}/retry-injection")
    assert status == 200, body
    assert (body["data"]["injection_status"], body["data"]["pos_order_id"], body["data"]["injection_error"]) == (
        "injected", f"P{shown['id']:06d}-2", None)
    assert (await post(api, tenant, f"{shown['id']}/retry-injection"))[1]["data"]["pos_order_id"] == body["data"]["pos_order_id"]
    await drained(orders_service)
    assert [e.data["attempt"] for e in await injections(infra, shown["id"], 2)] == [1, 2]


async def test_a_slow_pos_gets_pending_then_the_injection_follows(api, infra, tenant, orders_service, pos_control):
    made = await integration(api, tenant, orders_service)
    [shown] = await received(api, tenant, made)
    wait_s = orders_service.settings.orders_accept_wait_ms / 1000
    async with pos_control.put("/behaviour", json={"delay_ms": int(wait_s * 1000) + 700}) as response:
        assert response.status == 200
    started = asyncio.get_running_loop().time()
    status, body = await post(api, tenant, f"{shown['id']}/accept")
    assert (status, body["data"]["injection_status"], body["data"]["pos_order_id"]) == (200, "pending", None)
    assert wait_s - 0.1 <= asyncio.get_running_loop().time() - started < wait_s + 1.5
    await events(infra, shown["id"], contract.ORDER_INJECTED)
    _, detail, _ = await get(api, tenant, f"/api/v1/external-orders/{shown['id']}")
    assert detail["data"]["injection_status"] == "injected"


async def test_two_concurrent_accepts_inject_once(api, infra, tenant, orders_service, pos_control):
    made = await integration(api, tenant, orders_service)
    [shown] = await received(api, tenant, made)
    answers = await asyncio.gather(*(post(api, tenant, f"{shown['id']}/accept") for _ in range(2)))
    assert [status for status, _ in answers] == [200, 200]
    assert {body["data"]["status"] for _, body in answers} == {"accepted"}
    await drained(orders_service)
    assert len(await injections(infra, shown["id"])) == 1
    assert len(await events(infra, shown["id"], contract.ORDER_ACCEPTED)) == 1
    assert await history(api, tenant, shown["id"]) == [(None, "received", "platform"), ("received", "accepted", "merchant")]


async def test_an_order_not_accepted_in_time_expires_and_an_accept_racing_the_deadline_has_one_winner(
        api, infra, tenant, orders_service, pos_control):
    made = await integration(api, tenant, orders_service, accept_window_seconds=2)
    orders = await received(api, tenant, made, 4)
    accept_by = {o["id"]: datetime.fromisoformat(o["accept_by"]) for o in orders}
    assert all(0 < (accept_by[o["id"]] - datetime.fromisoformat(o["created_at"])).total_seconds() <= 2.5 for o in orders)

    async def accept_at(order_id: int, offset_s: float) -> int:  # around the deadline (shown to the second, cut)
        delay = (accept_by[order_id] - datetime.now(accept_by[order_id].tzinfo)).total_seconds() + offset_s
        await asyncio.sleep(max(0.0, delay))  # aiming at an instant, not synchronising
        return (await post(api, tenant, f"{order_id}/accept"))[0]

    statuses = await asyncio.gather(*(accept_at(o["id"], offset) for o, offset in zip(orders, (-0.3, 0.3, 0.7, 1.4))))
    for o, status in zip(orders, statuses):
        _, detail, _ = await get(api, tenant, f"/api/v1/external-orders/{o['id']}")
        moves = [(c["from"], c["to"]) for c in detail["data"]["status_history"] if c["from"] != c["to"]]
        if status == 200:
            assert moves == [(None, "received"), ("received", "accepted")], moves
        else:
            assert status == 409 and moves == [(None, "received"), ("received", "expired")], (status, moves)
    assert statuses[-1] == 409  # well past the deadline

    await push(api, made, order())  # nobody accepts this one: the timer expires it
    late = (await listed(api, tenant, 5))[0]

    async def expired() -> bool:
        return (await history(api, tenant, late["id"]))[-1] == ("received", "expired", "timer")

    await eventually(expired, 10, "the timer to expire the order")
    [event] = await events(infra, late["id"], contract.ORDER_EXPIRED)
    assert event.data["order"]["status"] == "expired"


async def test_auto_accept_accepts_and_injects_on_arrival(api, infra, tenant, orders_service, pos_control):
    made = await integration(api, tenant, orders_service, auto_accept=True, prep_time_minutes=200)
    [shown] = await received(api, tenant, made)

    async def injected() -> bool:
        _, detail, _ = await get(api, tenant, f"/api/v1/external-orders/{shown['id']}")
        return detail["data"]["injection_status"] == "injected"

    await eventually(injected, what="the auto-accepted order to be injected")
    assert (await history(api, tenant, shown["id"]))[1] == ("received", "accepted", "auto_accept")
    [injection] = await injections(infra, shown["id"])
    assert injection.data["prep_time_minutes"] == 180  # the POS is sent at most 180


def platform_cancel(made: dict, shown: dict, tenant: Tenant) -> Envelope:
    """What the integrations service emits when the platform cancels an order."""
    message = contract.PlatformOrderCancelled(integration_id=made["id"], external_id=shown["external_id"],
                                              reason="customer called")
    return Envelope.wrap(message, source="posint/integrations", type=contract.PLATFORM_ORDER_CANCELLED,
                         subject=f"{made['id']}/{shown['external_id']}", tenantid=tenant.id)


async def test_accept_racing_a_platform_cancellation_has_one_winner(api, infra, tenant, orders_service, pos_control):
    made = await integration(api, tenant, orders_service)
    orders = await received(api, tenant, made, 3)
    producer = kafka.make_producer(infra.settings(), client_id=unique("platform"))
    await producer.start()
    try:
        async def cancel(shown):
            await kafka.send(producer, topics.INTEGRATIONS_EVENTS, platform_cancel(made, shown, tenant), 5)

        results = await asyncio.gather(*(step for shown in orders
                                         for step in (post(api, tenant, f"{shown['id']}/accept"), cancel(shown))))
    finally:
        await producer.stop()
    for shown, (status, body) in zip(orders, results[::2]):
        async def settled() -> bool:
            return (await history(api, tenant, shown["id"]))[-1][1] == "cancelled"

        await eventually(settled, what="the cancellation to settle")  # after an accept the POS confirms it
        moves = [(f, t) for f, t, _ in await history(api, tenant, shown["id"])]
        if status == 200:  # the accept won: the platform's cancellation waited for the POS
            assert moves == [(None, "received"), ("received", "accepted"), ("accepted", "cancel_requested"),
                             ("cancel_requested", "cancelled")], moves
        else:
            assert (status, body["current_status"]) == (409, "cancelled")
            assert moves == [(None, "received"), ("received", "cancelled")], moves
        [event] = await events(infra, shown["id"], contract.ORDER_CANCELLED)
        assert event.data["source"] == ("pos" if status == 200 else "platform")


async def test_merchant_cancel_tells_the_pos_and_a_kitchen_progress_report_moves_the_order(
        api, infra, tenant, orders_service, pos_control):
    made = await integration(api, tenant, orders_service)
    [cancelled, cooked] = await received(api, tenant, made, 2)
    for shown in (cancelled, cooked):
        assert (await post(api, tenant, f"{shown['id']}/accept"))[1]["data"]["injection_status"] == "injected"
    status, body = await post(api, tenant, f"{cancelled['id']}/cancel", {"reason": "out of dough"})
    assert (status, body["data"]["status"]) == (200, "cancelled")
    assert (await post(api, tenant, f"{cancelled['id']}/cancel", {"reason": "again"}))[0] == 200  # repeat
    assert (await post(api, tenant, f"{cancelled['id']}/cancel", {}))[0] == 422
    [event] = await events(infra, cancelled["id"], contract.ORDER_CANCELLED)
    assert (event.data["source"], event.data["reason"]) == ("merchant", "out of dough")
    await read_topic(infra.bootstrap_servers, topics.POS_ORDERS, 1,
                     match=lambda e: e.type == pos.CANCEL_ORDER and e.subject == str(cancelled["id"]))

    for step in ("preparing", "completed", "payment_completed"):  # completed without ready: passes through it
        async with pos_control.post(f"/orders/{cooked['id']}/{step}") as response:
            assert response.status == 200
    await events(infra, cooked["id"], contract.PAYMENT_COMPLETED)
    await events(infra, cooked["id"], contract.ORDER_COMPLETED)
    assert [t for _, t, _ in await history(api, tenant, cooked["id"])] == [
        "received", "accepted", "preparing", "ready", "completed"]
    async with pos_control.post(f"/orders/{cooked['id']}/preparing") as response:  # late: kept, not applied
        assert response.status == 200

    async def kept() -> bool:
        _, detail, _ = await get(api, tenant, f"/api/v1/external-orders/{cooked['id']}")
        return detail["data"]["status_history"][-1]["reason"] == "prepare not applied"

    await eventually(kept, what="the late report in the history")


async def test_every_new_endpoint_refuses_another_tenants_order(api, gateway_service, tenant, orders_service, pos_control):
    made = await integration(api, tenant, orders_service)
    [shown] = await received(api, tenant, made)
    other = Tenant(*await create_tenant(gateway_service.pool, unique("other")))
    for action, body in (("accept", None), ("retry-injection", None), ("ready", None), ("complete", None),
                         ("cancel", {"reason": "mine now"})):
        status, problem = await post(api, other, f"{shown['id']}/{action}", body)
        assert status == 404, (action, problem)
    assert (await history(api, tenant, shown["id"])) == [(None, "received", "platform")]
