"""The reference POS against a real (private) broker: it answers posint's inject-order on
pos.order-events with a POS order number, refuses when told to, answers a redelivered command with
the same message (same ce_id), confirms cancellations, and reports kitchen progress on request."""
from __future__ import annotations

import aiohttp

from posint_common import kafka
from posint_common.contracts import pos, topics
from posint_common.contracts.inbound import NormalizedOrder
from posint_common.envelope import Envelope, utcnow
from posint_common.settings import KafkaSettings
from posint_common.testing import eventually, read_topic

from sandbox.pos.app import ReferencePos
from sandbox.pos.settings import PosSettings

ORDER = NormalizedOrder(external_id="web-1", placed_at=utcnow(), fulfillment="pickup",
                        items=[{"name": "Tea", "quantity": 1, "unit_price": "2.50"}],
                        subtotal="2.50", tax="0", total="2.50", currency="USD")


def inject(order_id: int, attempt: int = 1) -> Envelope:
    command = pos.InjectOrder(order_id=order_id, tenant_id="t-1", integration_id=7, provider="custom",
                              external_id="web-1", attempt=attempt, prep_time_minutes=12, order=ORDER)
    return Envelope.wrap(command, source="posint/orders", type=pos.INJECT_ORDER, subject=str(order_id), tenantid="t-1")


async def answers(bootstrap: str, command: Envelope, expected: int = 1) -> list[Envelope]:
    return await read_topic(bootstrap, topics.POS_ORDER_EVENTS, expected, timeout_s=20,
                            match=lambda e: e.causationid == command.id)


async def test_reference_pos_answers_fails_when_told_and_repeats_itself(private_broker):
    bootstrap = private_broker.bootstrap_servers
    reference = ReferencePos(PosSettings(kafka_bootstrap_servers=bootstrap, pos_control_port=0, kafka_fetch_wait_idle_ms=50))
    producer = kafka.make_producer(KafkaSettings(kafka_bootstrap_servers=bootstrap), client_id="test")
    await reference.start()
    await producer.start()
    control = f"http://127.0.0.1:{reference.port}"
    try:
        async with aiohttp.ClientSession() as http:
            first = inject(41)
            await kafka.send(producer, topics.POS_ORDERS, first, 5)
            [answer] = await answers(bootstrap, first)
            assert (answer.type, answer.tenantid, answer.subject) == (pos.ORDER_INJECTED, "t-1", "41")
            assert pos.PosOrderInjected.model_validate(answer.data).pos_order_id == "P000041-1"

            await kafka.send(producer, topics.POS_ORDERS, first, 5)  # redelivered: the same answer, same ce_id
            again = await answers(bootstrap, first, expected=2)
            assert {e.id for e in again} == {answer.id}

            async with http.put(f"{control}/behaviour", json={"fail_reason": "menu item 86", "fail_times": 1}) as response:
                assert response.status == 200
            refused, accepted = inject(42), inject(42, attempt=2)
            await kafka.send(producer, topics.POS_ORDERS, refused, 5)
            await kafka.send(producer, topics.POS_ORDERS, accepted, 5)
            [failure] = await answers(bootstrap, refused)
            assert failure.type == pos.ORDER_INJECTION_FAILED
            assert pos.PosOrderInjectionFailed.model_validate(failure.data).model_dump() == {
                "order_id": 42, "reason": "menu item 86", "attempt": 1}
            [success] = await answers(bootstrap, accepted)  # fail_times=1: the next one goes in
            assert success.type == pos.ORDER_INJECTED

            async with http.post(f"{control}/orders/42/ready") as response:
                assert response.status == 200
            ready = await read_topic(bootstrap, topics.POS_ORDER_EVENTS, 1, timeout_s=20,
                                     match=lambda e: e.type == pos.ORDER_READY)
            assert (ready[0].subject, ready[0].tenantid) == ("42", "t-1")
            async with http.post(f"{control}/orders/999/ready") as response:
                assert response.status == 404
            async with http.put(f"{control}/behaviour", json={"delay_ms": -1}) as response:
                assert response.status == 422

            cancel = Envelope.wrap(pos.CancelOrder(order_id=41, tenant_id="t-1", reason="customer"),
                                   source="posint/orders", type=pos.CANCEL_ORDER, subject="41", tenantid="t-1")
            await kafka.send(producer, topics.POS_ORDERS, cancel, 5)
            [confirmed] = await answers(bootstrap, cancel)
            assert confirmed.type == pos.ORDER_CANCELLED
            async with http.get(f"{control}/state") as response:
                state = await response.json()
            assert state["counters"] == {"injected": 3, "failed": 1, "cancelled": 1, "commands": 5}
            assert state["orders"]["41"]["status"] == "cancelled"
    finally:
        await producer.stop()
        await reference.stop()


async def test_a_slow_reference_pos_waits_before_answering(private_broker):
    bootstrap = private_broker.bootstrap_servers
    reference = ReferencePos(PosSettings(kafka_bootstrap_servers=bootstrap, pos_control_port=0, pos_delay_ms=700,
                                         kafka_fetch_wait_idle_ms=50))
    producer = kafka.make_producer(KafkaSettings(kafka_bootstrap_servers=bootstrap), client_id="test")
    await reference.start()
    await producer.start()
    try:
        await eventually(reference.joined.is_set, 20, "the POS to join its group")
        command = inject(43)
        sent = utcnow()
        await kafka.send(producer, topics.POS_ORDERS, command, 5)
        [answer] = await answers(bootstrap, command)
        assert (answer.time - sent).total_seconds() >= 0.7
    finally:
        await producer.stop()
        await reference.stop()
