"""The orders service's metrics, end to end: arrivals, acceptances (with the time to accept),
expiries by the timer and POS injections by outcome (injected, failed, and pending when the accept
was answered before the POS), each counter moved by exactly what the flow did; the gauge of received
orders near their accept_by; all served on the orders service's /metrics. Real gateway, integrations
and orders services and the reference POS over pos.orders / pos.order-events; the counters are read
from the process's registry (the services run in-process)."""
from __future__ import annotations

import aiohttp
import pytest
from prometheus_client import REGISTRY

from gateway.tenants import create_tenant
from posint_common.testing import eventually, unique

from .conftest import Tenant
from .test_external_orders import listed, order, push
from .test_orders_accept import integration, pos_control, post, received, reference_pos  # noqa: F401 - fixtures


@pytest.fixture
async def tenant(gateway_service, integrations_service, orders_service) -> Tenant:
    return Tenant(*await create_tenant(gateway_service.pool, unique("orders-metrics")))


def value(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def transitions(to: str, source: str) -> tuple[str, dict]:
    return "posint_orders_transitions_total", {"provider": "custom", "to": to, "source": source}


def injections(outcome: str) -> tuple[str, dict]:
    return "posint_orders_injections_total", {"provider": "custom", "outcome": outcome}


TIME_TO_ACCEPT = ("posint_orders_time_to_accept_seconds_count", {"source": "merchant"})


class Counts:
    """The samples named, now; ``moved()`` says by how much each grew since."""

    def __init__(self, *series: tuple[str, dict]) -> None:
        self.series = series
        self.before = [value(name, **labels) for name, labels in series]

    def moved(self) -> list[float]:
        return [value(name, **labels) - before for (name, labels), before in zip(self.series, self.before)]


async def test_arrivals_accepts_and_injections_are_counted(api, tenant, orders_service, pos_control):
    counts = Counts(transitions("received", "platform"), transitions("accepted", "merchant"), TIME_TO_ACCEPT,
                    injections("injected"), injections("failed"), injections("pending"))
    made = await integration(api, tenant, orders_service)
    injected, refused, slow = await received(api, tenant, made, 3)
    assert counts.moved() == [3, 0, 0, 0, 0, 0]

    status, body = await post(api, tenant, f"{injected['id']}/accept")
    assert status == 200 and body["data"]["injection_status"] == "injected", body
    assert counts.moved() == [3, 1, 1, 1, 0, 0]

    async with pos_control.put("/behaviour", json={"fail_reason": "no such item", "fail_times": 1}) as response:
        assert response.status == 200
    status, body = await post(api, tenant, f"{refused['id']}/accept")
    assert status == 200 and body["data"]["injection_status"] == "failed", body
    assert counts.moved() == [3, 2, 2, 1, 1, 0]

    # The POS answers after the accept's wait (3 s): answered pending, injected later.
    async with pos_control.put("/behaviour", json={"delay_ms": 3_700}) as response:
        assert response.status == 200
    status, body = await post(api, tenant, f"{slow['id']}/accept")
    assert status == 200 and body["data"]["injection_status"] == "pending", body
    await eventually(lambda: counts.moved()[3] == 2, 15, "the late injection counted")
    assert counts.moved() == [3, 3, 3, 2, 1, 1]
    seconds = value("posint_orders_time_to_accept_seconds_sum", source="merchant")
    assert seconds > 0

    health = f"http://127.0.0.1:{orders_service.ports['health']}/metrics"
    async with aiohttp.ClientSession() as session, session.get(health) as response:
        served = await response.text()
    assert 'posint_orders_transitions_total{provider="custom",source="merchant",to="accepted"}' in served
    assert 'posint_orders_injections_total{outcome="pending",provider="custom"}' in served
    for name in ("posint_orders_time_to_accept_seconds_bucket", "posint_orders_unaccepted{",
                 "posint_orders_unaccepted_near_deadline{"):
        assert name in served, name


async def test_an_order_near_its_deadline_is_gauged_then_expired_and_counted(api, tenant, orders_service):
    expired = Counts(transitions("expired", "timer"))
    made = await integration(api, tenant, orders_service, accept_window_seconds=3)  # near at once (120 s)
    await push(api, made, order())
    [waiting] = await listed(api, tenant, 1)
    assert waiting["status"] == "received"
    await eventually(lambda: value("posint_orders_unaccepted_near_deadline", provider="custom") >= 1, 10,
                     "the order counted as near its deadline")
    assert value("posint_orders_unaccepted", provider="custom") >= 1

    await eventually(lambda: expired.moved() == [1], 15, "the timer's expiry counted")
    [gone] = await listed(api, tenant, 1)
    assert gone["status"] == "expired"
