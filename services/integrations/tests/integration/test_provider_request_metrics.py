"""posint_provider_requests_total and posint_provider_request_seconds, counted by the shared
transport for every HTTP attempt (retries included), labelled with the client operation (order
list, status update, booking) or the OAuth token request it belongs to; against the sandbox's fake
platforms over real HTTP on 127.0.0.1, through the egress guard."""
from __future__ import annotations

import socket
from dataclasses import replace

import pytest
from prometheus_client import REGISTRY

from integrations.adapters.providers.client import (
    AuthExpired, ClientOptions, OrderStatusKind, PermanentError, RetryableError, StatusUpdate, client_for,
)
from posint_common.contracts.orders import ExternalOrder
from posint_common.egress import EgressPolicy, egress_session, parse_networks
from sandbox.platforms import samples
from sandbox.platforms.demo import DEMO_CREDENTIALS, demo_config
from sandbox.platforms.faults import Fault
from sandbox.platforms.server import Sandbox

FAST = ClientOptions(connect_timeout_s=1.0, total_timeout_s=0.5, attempts=3, deadline_s=10, wait_initial_s=0.01,
                     wait_max_s=0.05, wait_jitter_s=0.01, retry_after_max_s=2.0)
OUTCOMES = ("success", "http_4xx", "http_429", "http_5xx", "timeout", "connect_error", "refused")


@pytest.fixture(scope="module")
async def sandbox():
    async with Sandbox(options={"page_size": 2}) as running:
        yield running


@pytest.fixture
async def session():
    async with egress_session(EgressPolicy(parse_networks("127.0.0.0/8"), allow_only=True)) as guarded:
        yield guarded


def client(sandbox, session, provider, credentials=None, options=FAST):
    sandbox[provider].reset()
    return client_for(provider, demo_config(provider, sandbox.url), credentials or DEMO_CREDENTIALS[provider],
                      session, options=options)


class Attempts:
    """Every outcome of one provider's operation, now; ``moved()``: what grew since, by outcome."""

    def __init__(self, provider: str, operation: str) -> None:
        self.labels = {"provider": provider, "operation": operation}
        self.before = self._now()

    def _now(self) -> dict[str, float]:
        counts = {outcome: REGISTRY.get_sample_value("posint_provider_requests_total", {**self.labels, "outcome": outcome})
                  for outcome in OUTCOMES}
        counts["timed"] = REGISTRY.get_sample_value("posint_provider_request_seconds_count", self.labels)
        return {name: value or 0.0 for name, value in counts.items()}

    def moved(self) -> dict[str, float]:
        return {name: value - self.before[name] for name, value in self._now().items() if value != self.before[name]}


async def test_each_attempt_of_an_order_list_is_counted_and_timed_the_token_apart(sandbox, session):
    fake = sandbox["ubereats"]
    ubereats = client(sandbox, session, "ubereats", options=replace(FAST, attempts=5))
    for seed in range(3):
        fake.add_order(samples.sample_order(seed=seed))
    fake.faults.add(Fault("429", path="/orders", retry_after=0.01))
    fake.faults.add(Fault("500", path="/orders"))
    fake.faults.add(Fault("timeout", path="/orders", delay_s=1.0))
    token, fetch = Attempts("ubereats", "token"), Attempts("ubereats", "fetch_orders")

    result = await ubereats.fetch_orders(None)
    assert len(result.orders) == 3
    assert token.moved() == {"success": 1, "timed": 1}
    # The first page: a 429, a 500 and a timeout, each tried again; two pages.
    assert fetch.moved() == {"http_429": 1, "http_5xx": 1, "timeout": 1, "success": 2, "timed": 5}


async def test_refused_credentials_and_a_4xx_are_counted_once_each(sandbox, session):
    token = Attempts("ubereats", "token")
    refused = client(sandbox, session, "ubereats", {"client_id": "ue-client", "client_secret": "wrong"})
    with pytest.raises(AuthExpired):
        await refused.fetch_orders(None)
    assert token.moved() == {"http_4xx": 1, "timed": 1}  # not retried

    status = Attempts("grubhub", "push_status")
    grubhub = client(sandbox, session, "grubhub", {**DEMO_CREDENTIALS["grubhub"], "secret_key": "wrong"})
    with pytest.raises(PermanentError):
        await grubhub.push_status("gh-unknown", StatusUpdate(OrderStatusKind.READY))
    assert status.moved() == {"http_4xx": 1, "timed": 1}


async def test_a_booking_counts_as_push_sale_and_its_token_apart(sandbox, session):
    token, sale = Attempts("quickbooks", "token"), Attempts("quickbooks", "push_sale")
    ledger = client(sandbox, session, "quickbooks")
    order = ExternalOrder.model_validate({
        "id": 1, "integration_id": 1, "external_id": "qb-1", "status": "completed", "raw_data": {},
        "placed_at": "2026-01-04T18:00:00Z", "customer": {"name": "Ada"}, "fulfillment": "pickup",
        "items": [{"external_id": "tea", "name": "Tea", "quantity": 1, "unit_price": "2.50"}],
        "subtotal": "2.50", "tax": "0", "tip": "0", "total": "2.50", "currency": "USD",
        "created_at": "2026-01-04T18:00:01Z"})
    await ledger.push_sale(order, "posint-order-1")
    assert token.moved() == {"success": 1, "timed": 1}
    assert sale.moved() == {"success": 1, "timed": 1}


async def test_a_closed_port_is_a_connect_error_on_every_try(session):
    attempts = Attempts("custom", "fetch_orders")
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    closed = client_for("custom", {"api_base_url": f"http://127.0.0.1:{port}"}, {}, session, options=FAST)
    with pytest.raises(RetryableError):
        await closed.fetch_orders(None)
    assert attempts.moved() == {"connect_error": FAST.attempts, "timed": FAST.attempts}


async def test_an_address_the_egress_guard_refuses_is_counted_refused():
    attempts = Attempts("doordash", "fetch_orders")
    async with egress_session(EgressPolicy((), allow_only=True)) as closed:  # nothing allowed: nothing is sent
        doordash = client_for("doordash", demo_config("doordash", "http://127.0.0.1:9"), DEMO_CREDENTIALS["doordash"],
                              closed, options=FAST)
        with pytest.raises(PermanentError):
            await doordash.fetch_orders(None)
    assert attempts.moved() == {"refused": 1, "timed": 1}
