"""The ledger clients (QuickBooks sales receipts, Xero invoices) against their sandbox fakes over
real HTTP on 127.0.0.1: one booking per order however often it is pushed or retried (``requestid``
/ ``Idempotency-Key``), OAuth refresh with rotating refresh tokens, 429/timeouts, bad answers."""
from __future__ import annotations

import time
from decimal import Decimal

import pytest

from integrations.adapters.providers.client import (
    AuthExpired, ClientOptions, PermanentError, RetryableError, TokenSet, Unsupported, client_for,
)
from posint_common.contracts.orders import ExternalOrder
from posint_common.egress import EgressPolicy, egress_session, parse_networks
from sandbox.platforms import samples
from sandbox.platforms.demo import DEMO_CREDENTIALS, demo_config
from sandbox.platforms.faults import Fault
from sandbox.platforms.server import Sandbox

LEDGERS = ("quickbooks", "xero")
FAST = ClientOptions(connect_timeout_s=1.0, total_timeout_s=0.5, attempts=3, deadline_s=10, wait_initial_s=0.01,
                     wait_max_s=0.05, wait_jitter_s=0.01, retry_after_max_s=2.0)
WRITE_PATH = {"quickbooks": "/salesreceipt", "xero": "/Invoices"}
TOKEN_PATH = {"quickbooks": "/tokens/bearer", "xero": "/connect/token"}


def completed_order(seed: int = 1) -> ExternalOrder:
    normalized = samples.custom(samples.sample_order(seed=seed))
    return ExternalOrder.model_validate({
        **normalized, "id": 40 + seed, "integration_id": 7, "status": "completed", "raw_data": {},
        "created_at": normalized["placed_at"], "notes": normalized.get("notes")})


@pytest.fixture
async def sandbox():
    async with Sandbox() as running:
        yield running


@pytest.fixture
async def session():
    async with egress_session(EgressPolicy(parse_networks("127.0.0.0/8"), allow_only=True)) as guarded:
        yield guarded


def client(sandbox, session, provider, *, credentials=None, **kwargs):
    return client_for(provider, demo_config(provider, sandbox.url), credentials or DEMO_CREDENTIALS[provider],
                      session, options=FAST, **kwargs)


def booked_total(provider: str, document: dict) -> Decimal:
    if provider == "quickbooks":
        return sum((Decimal(str(line["Amount"])) for line in document["Line"]), Decimal(0)) + \
            Decimal(str(document["TxnTaxDetail"]["TotalTax"]))
    lines = document["Invoices"][0]["LineItems"]
    return sum((Decimal(str(line["UnitAmount"])) * line["Quantity"] for line in lines), Decimal(0))


@pytest.mark.parametrize("provider", LEDGERS)
async def test_a_sale_is_booked_once_per_idempotency_key(sandbox, session, provider):
    order = completed_order()
    api = client(sandbox, session, provider)
    first = await api.push_sale(order, "posint-t1-41")
    again = await api.push_sale(order, "posint-t1-41")
    assert first == again and first.ledger_id
    fake = sandbox[provider]
    assert len(fake.ledger) == 1
    assert booked_total(provider, fake.ledger[0].body) == order.total  # the order's money, to the cent
    other = await api.push_sale(completed_order(2), "posint-t1-42")
    assert other.ledger_id != first.ledger_id and len(fake.ledger) == 2
    if provider == "xero":
        assert fake.ledger[0].headers["Xero-tenant-id"] == "demo-xero-tenant"
        assert fake.ledger[0].headers["Idempotency-Key"] == "posint-t1-41"


@pytest.mark.parametrize("provider", LEDGERS)
async def test_a_write_whose_answer_is_lost_is_retried_without_booking_twice(sandbox, session, provider):
    fake = sandbox[provider]
    fake.faults.add(Fault("lost_answer", delay_s=2, path=WRITE_PATH[provider]))
    ref = await client(sandbox, session, provider).push_sale(completed_order(), "posint-t1-41")
    assert len(fake.ledger) == 1 and len(fake.faults.injected) == 1
    assert ref.ledger_id == (fake.by_key["posint-t1-41"]["SalesReceipt"]["Id"] if provider == "quickbooks"
                             else fake.by_key["posint-t1-41"]["Invoices"][0]["InvoiceID"])


@pytest.mark.parametrize("provider", LEDGERS)
async def test_refresh_tokens_rotate_and_each_new_set_is_handed_over_before_use(sandbox, session, provider):
    fake = sandbox[provider]
    stored: list[TokenSet] = []

    async def store(tokens: TokenSet) -> None:
        stored.append(tokens)

    api = client(sandbox, session, provider, on_tokens=store)
    await api.push_sale(completed_order(1), "k1")
    assert len(stored) == 1 and stored[0].refresh_token != DEMO_CREDENTIALS[provider]["refresh_token"]
    assert api.tokens.expires_at is not None

    fake.expire_tokens()
    await api.push_sale(completed_order(2), "k2")
    assert len(stored) == 2 and len(fake.ledger) == 2
    # the second refresh used the rotated token, not the one in the credentials
    assert fake.refresh_tokens_used == [DEMO_CREDENTIALS[provider]["refresh_token"], stored[0].refresh_token]

    later = client(sandbox, session, provider, tokens=stored[-1])  # what the service stored: no new refresh
    await later.push_sale(completed_order(3), "k3")
    assert len(fake.refresh_tokens_used) == 2


@pytest.mark.parametrize("provider", LEDGERS)
async def test_a_revoked_refresh_token_or_wrong_client_is_auth_expired(sandbox, session, provider):
    sandbox[provider].revoke_refresh_tokens()
    with pytest.raises(AuthExpired):
        await client(sandbox, session, provider).push_sale(completed_order(), "k1")
    wrong = {**DEMO_CREDENTIALS[provider], "client_secret": "wrong"}
    with pytest.raises(AuthExpired):
        await client(sandbox, session, provider, credentials=wrong).push_sale(completed_order(), "k1")
    assert sandbox[provider].ledger == []


@pytest.mark.parametrize("provider", LEDGERS)
@pytest.mark.parametrize("path", ["write", "token"])
async def test_429_with_retry_after_is_waited_out(sandbox, session, provider, path):
    fake = sandbox[provider]
    fake.faults.add(Fault("429", retry_after=0.3, path=(WRITE_PATH if path == "write" else TOKEN_PATH)[provider]))
    started = time.monotonic()
    await client(sandbox, session, provider).push_sale(completed_order(), "k1")
    assert time.monotonic() - started >= 0.3
    assert len(fake.ledger) == 1 and [kind for kind, _ in fake.faults.injected] == ["429"]


@pytest.mark.parametrize("provider", LEDGERS)
async def test_timeouts_and_500s_end_as_retryable_errors(sandbox, session, provider):
    fake = sandbox[provider]
    fake.faults.add(Fault("timeout", delay_s=3, path=WRITE_PATH[provider], times=FAST.attempts))
    with pytest.raises(RetryableError, match="timed out"):
        await client(sandbox, session, provider).push_sale(completed_order(), "k1")
    fake.faults.add(Fault("500", path=WRITE_PATH[provider], times=FAST.attempts))
    with pytest.raises(RetryableError) as raised:
        await client(sandbox, session, provider).push_sale(completed_order(), "k1")
    assert raised.value.status == 500 and fake.ledger == []


@pytest.mark.parametrize("provider", LEDGERS)
@pytest.mark.parametrize("path", ["write", "token"])
async def test_a_malformed_answer_is_a_permanent_error(sandbox, session, provider, path):
    fake = sandbox[provider]
    fake.faults.add(Fault("malformed", path=(WRITE_PATH if path == "write" else TOKEN_PATH)[provider]))
    with pytest.raises(PermanentError):
        await client(sandbox, session, provider).push_sale(completed_order(), "k1")
    assert len(fake.faults.injected) == 1


@pytest.mark.parametrize("provider", LEDGERS)
async def test_a_ledger_has_no_order_list(sandbox, session, provider):
    with pytest.raises(Unsupported):
        await client(sandbox, session, provider).fetch_orders(None)
