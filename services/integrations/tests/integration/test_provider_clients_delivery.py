"""The delivery platform clients (DoorDash, Uber Eats, Grubhub, custom) against their sandbox
fakes over real HTTP on 127.0.0.1, through the egress guard: order lists since a watermark,
status updates, retries on 429/5xx/timeouts honouring Retry-After, token refresh, bad answers."""
from __future__ import annotations

import time
from datetime import timedelta
from decimal import Decimal

import pytest

from integrations.adapters.providers.client import (
    AuthExpired, ClientOptions, OrderStatusKind, PermanentError, RetryableError, StatusUpdate, TokenSet, client_for,
)
from posint_common.egress import EgressPolicy, egress_session, parse_networks
from sandbox.platforms import samples
from sandbox.platforms.demo import DEMO_CREDENTIALS, demo_config
from sandbox.platforms.faults import Fault
from sandbox.platforms.server import Sandbox

DELIVERY = ("doordash", "ubereats", "grubhub", "custom")
FAST = ClientOptions(connect_timeout_s=1.0, total_timeout_s=0.5, attempts=3, deadline_s=10, wait_initial_s=0.01,
                     wait_max_s=0.05, wait_jitter_s=0.01, retry_after_max_s=2.0)
LIST_PATH = {"doordash": "/orders", "ubereats": "/orders", "grubhub": "/orders", "custom": "/orders"}


@pytest.fixture
async def sandbox():
    async with Sandbox(options={"page_size": 2}) as running:
        yield running


@pytest.fixture
async def session():
    async with egress_session(EgressPolicy(parse_networks("127.0.0.0/8"), allow_only=True)) as guarded:
        yield guarded


def client(sandbox, session, provider, *, options=FAST, credentials=None, **kwargs):
    return client_for(provider, demo_config(provider, sandbox.url), credentials or DEMO_CREDENTIALS[provider],
                      session, options=options, **kwargs)


@pytest.mark.parametrize("provider", DELIVERY)
async def test_fetch_reads_every_page_since_the_watermark(sandbox, session, provider):
    fake = sandbox[provider]
    added = [samples.sample_order(seed=n) for n in range(3)]
    for sample in added:
        fake.add_order(sample)
    result = await client(sandbox, session, provider).fetch_orders(None)

    assert [order.normalized.external_id for order in result.orders] == [sample.id for sample in added]
    first = result.orders[0].normalized
    assert first.total == Decimal(samples.decimal_text(added[0].total))
    assert first.subtotal == Decimal(samples.decimal_text(added[0].subtotal))
    assert result.orders[0].raw == fake.list_element(fake.orders[0])  # the platform's element untouched
    assert result.watermark == fake.orders[-1].updated_at.replace(microsecond=fake.orders[-1].updated_at.microsecond)
    assert result.failed == []

    newer = samples.sample_order(seed=9)
    fake.add_order(newer, updated_at=result.watermark + timedelta(seconds=1))
    again = await client(sandbox, session, provider).fetch_orders(result.watermark)
    assert [order.normalized.external_id for order in again.orders] == [added[-1].id, newer.id]  # since is inclusive
    assert again.watermark > result.watermark


@pytest.mark.parametrize("provider", DELIVERY)
async def test_duplicate_and_out_of_order_lists_give_each_order_once_oldest_first(sandbox, session, provider):
    fake = sandbox[provider]
    added = [samples.sample_order(seed=n) for n in range(4)]
    for sample in added:
        fake.add_order(sample)
    fake.duplicate = fake.out_of_order = True
    result = await client(sandbox, session, provider).fetch_orders(None)
    assert [order.normalized.external_id for order in result.orders] == [sample.id for sample in added]


@pytest.mark.parametrize("provider", DELIVERY)
async def test_429_with_retry_after_is_waited_out(sandbox, session, provider):
    fake = sandbox[provider]
    fake.add_order()
    fake.faults.add(Fault("429", retry_after=0.4, path=LIST_PATH[provider]))
    started = time.monotonic()
    result = await client(sandbox, session, provider).fetch_orders(None)
    assert len(result.orders) == 1
    assert time.monotonic() - started >= 0.4  # the platform's Retry-After, not the 10 ms backoff
    assert [kind for kind, _ in fake.faults.injected] == ["429"]


@pytest.mark.parametrize("provider", DELIVERY)
async def test_retry_after_beyond_the_cap_is_handed_to_the_caller(sandbox, session, provider):
    fake = sandbox[provider]
    fake.faults.add(Fault("429", retry_after=120, path=LIST_PATH[provider], times=5))
    with pytest.raises(RetryableError) as raised:
        await client(sandbox, session, provider).fetch_orders(None)
    assert raised.value.status == 429 and raised.value.retry_after == 120
    assert len(fake.faults.injected) == 1  # not retried here: the caller schedules it


@pytest.mark.parametrize("provider", DELIVERY)
async def test_a_timeout_is_retried_and_persistent_ones_are_retryable_errors(sandbox, session, provider):
    fake = sandbox[provider]
    fake.add_order()
    fake.faults.add(Fault("timeout", delay_s=3, path=LIST_PATH[provider]))
    assert len((await client(sandbox, session, provider).fetch_orders(None)).orders) == 1

    fake.faults.add(Fault("timeout", delay_s=3, path=LIST_PATH[provider], times=FAST.attempts))
    with pytest.raises(RetryableError, match="timed out"):
        await client(sandbox, session, provider).fetch_orders(None)


@pytest.mark.parametrize("provider", DELIVERY)
async def test_500s_are_retried_up_to_the_attempts(sandbox, session, provider):
    fake = sandbox[provider]
    fake.faults.add(Fault("500", path=LIST_PATH[provider], times=10))
    with pytest.raises(RetryableError) as raised:
        await client(sandbox, session, provider).fetch_orders(None)
    assert raised.value.status == 500
    assert len(fake.faults.injected) == FAST.attempts


@pytest.mark.parametrize("provider", DELIVERY)
async def test_a_malformed_response_is_a_permanent_error_and_a_bad_element_is_counted(sandbox, session, provider):
    fake = sandbox[provider]
    fake.faults.add(Fault("malformed", path=LIST_PATH[provider]))
    with pytest.raises(PermanentError, match="not JSON"):
        await client(sandbox, session, provider).fetch_orders(None)
    assert len(fake.faults.injected) == 1  # not retried

    fake.add_order(samples.sample_order(seed=1))
    broken = fake.add_order(samples.sample_order(seed=2))
    (broken.pop("items") if provider == "custom" else broken.pop({"doordash": "categories", "ubereats": "cart",
                                                                   "grubhub": "charges"}[provider]))
    result = await client(sandbox, session, provider).fetch_orders(None)
    assert len(result.orders) == 1 and len(result.failed) == 1
    assert result.failed[0].external_id == fake.order_id(broken)


@pytest.mark.parametrize("provider", DELIVERY)
async def test_status_updates_reach_the_platform(sandbox, session, provider):
    api = client(sandbox, session, provider)
    for update in (StatusUpdate(OrderStatusKind.ACCEPTED, prep_time_minutes=20),
                   StatusUpdate(OrderStatusKind.REJECTED, reason="STORE_CLOSED", detail="closing early"),
                   StatusUpdate(OrderStatusKind.READY), StatusUpdate(OrderStatusKind.CANCELLED, reason="OTHER")):
        await api.push_status("ORD-1", update)
    recorded = sandbox[provider].status_updates
    assert len(recorded) == 4
    assert all("ORD-1" in record.path for record in recorded)
    bodies = [record.body for record in recorded]
    if provider == "doordash":
        assert bodies[0]["order_status"] == "success" and "prep_time" in bodies[0]
        assert bodies[1]["order_status"] == "fail" and "STORE_CLOSED" in bodies[1]["failure_reason"]
        assert recorded[2].path.endswith("/order_ready_for_pickup") and recorded[3].path.endswith("/cancellation")
    elif provider == "ubereats":
        assert [record.path.rsplit("/", 1)[1] for record in recorded] == ["accept", "deny", "ready", "cancel"]
        assert bodies[1]["deny_reason"] == {"type": "STORE_CLOSED", "info": "closing early"}
    elif provider == "grubhub":
        assert [body["status"] for body in bodies] == ["CONFIRMED", "REJECTED", "READY_FOR_PICKUP", "CANCELLED"]
        assert bodies[0]["wait_time_in_minutes"] == 20
    else:
        assert [body["status"] for body in bodies] == ["accepted", "rejected", "ready", "cancelled"]
        assert recorded[0].headers["Authorization"] == f"Bearer {DEMO_CREDENTIALS['custom']['api_key']}"


async def test_uber_eats_token_is_fetched_once_refreshed_after_a_401_and_handed_over(sandbox, session):
    fake = sandbox["ubereats"]
    fake.add_order()
    stored: list[TokenSet] = []

    async def store(tokens: TokenSet) -> None:
        stored.append(tokens)

    api = client(sandbox, session, "ubereats", on_tokens=store)
    await api.fetch_orders(None)
    await api.push_status("X", StatusUpdate(OrderStatusKind.READY))
    assert fake.token_requests == 1 and len(stored) == 1
    assert api.tokens is stored[0] and api.tokens.expires_at is not None
    assert "access_token" not in repr(api.tokens) and stored[0].access_token not in repr(api.tokens)

    fake.expire_tokens()  # the platform revoked it early: 401, one refresh, the call goes through
    await api.push_status("X", StatusUpdate(OrderStatusKind.READY))
    assert fake.token_requests == 2 and len(stored) == 2 and len(fake.status_updates) == 2

    reused = client(sandbox, session, "ubereats", tokens=stored[-1])  # a stored token is used, not refetched
    await reused.fetch_orders(None)
    assert fake.token_requests == 2


async def test_uber_eats_token_close_to_expiry_is_refreshed_before_use(session):
    async with Sandbox(options={"token_ttl_s": 30}) as sandbox:  # inside the 60 s margin
        api = client(sandbox, session, "ubereats")
        await api.fetch_orders(None)
        await api.fetch_orders(None)
        assert sandbox["ubereats"].token_requests == 2


@pytest.mark.parametrize("provider, credentials", [
    ("doordash", {**DEMO_CREDENTIALS["doordash"], "key_id": "someone-else"}),
    ("ubereats", {**DEMO_CREDENTIALS["ubereats"], "client_secret": "wrong"}),
    ("grubhub", {**DEMO_CREDENTIALS["grubhub"], "secret_key": "wrong"}),
    ("custom", {"api_key": "wrong"}),
])
async def test_refused_credentials_are_auth_expired(sandbox, session, provider, credentials):
    with pytest.raises(AuthExpired):
        await client(sandbox, session, provider, credentials=credentials).fetch_orders(None)


async def test_custom_without_api_base_url_is_push_only(session):
    from integrations.adapters.providers.client import Unsupported

    api = client_for("custom", {"api_base_url": None}, {}, session, options=FAST)
    result = await api.fetch_orders(None)
    assert result.orders == [] and result.watermark is None
    with pytest.raises(Unsupported):
        await api.push_status("X", StatusUpdate(OrderStatusKind.READY))


async def test_the_egress_guard_refuses_a_base_url_it_does_not_allow(sandbox):
    async with egress_session(EgressPolicy(allow_only=True)) as closed:  # nothing allowed at all
        with pytest.raises(PermanentError, match="egress"):
            await client(sandbox, closed, "doordash").fetch_orders(None)


@pytest.mark.parametrize("header, seconds", [
    ("7", 7.0), ("0.25", 0.25), ("Wed, 21 Oct 2015 07:28:10 GMT", 10.0), ("soon", None), ("-3", None), (None, None),
])
def test_retry_after_is_read_as_seconds_or_an_http_date(header, seconds):
    from datetime import datetime, timezone

    from integrations.adapters.providers.api.transport import retry_after_seconds

    now = datetime(2015, 10, 21, 7, 28, 0, tzinfo=timezone.utc).timestamp()
    assert retry_after_seconds(header, now) == seconds


async def test_a_dropped_connection_is_retried(sandbox, session):
    fake = sandbox["grubhub"]
    fake.add_order()
    fake.faults.add(Fault("drop", path="/orders"))
    result = await client(sandbox, session, "grubhub").fetch_orders(None)
    assert len(result.orders) == 1 and [kind for kind, _ in fake.faults.injected] == ["drop"]
