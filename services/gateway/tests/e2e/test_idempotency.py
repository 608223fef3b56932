"""Idempotency-Key on POST through the real gateway, broker, integrations service and Postgres: a
replay answers the kept response and sends nothing, a different request is 422, a running one 409,
a 5xx is not kept, expired keys are claimed anew and purged, and keys are per tenant."""
from __future__ import annotations

import asyncio
import copy
import json
import uuid

import aiohttp
import pytest
from multidict import CIMultiDict

from gateway.bootstrap import bootstrap as gateway_bootstrap
from gateway.config import GatewaySettings
from gateway.http.endpoints import API_PREFIX, ENDPOINTS
from gateway.tenants import create_tenant
from posint_common.contracts import topics
from posint_common.devstack.broker import EmbeddedBroker
from posint_common.kafka import ensure_topics
from posint_common.testing import eventually, started, unique

DOORDASH = {"name": "DoorDash", "integration_type": "delivery", "provider": "doordash",
            "config": {"store_id": "dd-idem-1"},
            "credentials": {"developer_id": "dev-1", "key_id": "kid-1", "signing_secret": "sig-idem-SECRET"}}
UBEREATS = {"name": "Uber Eats", "integration_type": "delivery", "provider": "ubereats", "config": {"store_id": "ue-1"},
            "credentials": {"client_id": "cid", "client_secret": "cs"}}


def headers(key: str, idempotency_key: str | None = None) -> dict:
    extra = {"Idempotency-Key": idempotency_key} if idempotency_key is not None else {}
    return {"Authorization": f"Bearer {key}", **extra}


@pytest.fixture
async def tenant(gateway_service, integrations_service) -> tuple[str, str]:
    return await create_tenant(gateway_service.pool, unique("idem"))


async def integration_count(integrations_service, tenant_id: str) -> int:
    return await integrations_service.pool.fetchval("SELECT count(*) FROM integrations WHERE tenant_id = $1", tenant_id)


async def post(api, key: str, document: dict, idempotency_key: str | None = None):
    async with api.post("/api/v1/integrations", headers=headers(key, idempotency_key), json=document) as response:
        return response.status, CIMultiDict(response.headers), await response.read()


async def post_raw(api, key: str, raw: str, idempotency_key: str):
    async with api.post("/api/v1/integrations", data=raw,
                        headers={**headers(key, idempotency_key), "Content-Type": "application/json"}) as response:
        return response.status, CIMultiDict(response.headers), await response.read()


async def test_the_same_key_and_request_replays_the_kept_response_and_sends_nothing(api, tenant, integrations_service):
    tenant_id, key = tenant
    idem = str(uuid.uuid4())
    status, first_headers, first_body = await post(api, key, DOORDASH, idem)
    assert status == 201, first_body
    assert "Idempotent-Replayed" not in first_headers
    # The same request written differently (key order, whitespace) is the same request.
    reordered = json.dumps(dict(reversed(list(copy.deepcopy(DOORDASH).items()))), indent=2)
    status, replay_headers, replay_body = await post_raw(api, key, reordered, idem)
    assert status == 201
    assert replay_headers["Idempotent-Replayed"] == "true"
    assert replay_body == first_body  # inbound_secret included: the client may have lost the first answer
    assert replay_headers["Location"] == first_headers["Location"]
    assert replay_headers["Content-Type"] == first_headers["Content-Type"]
    assert replay_headers["X-Request-Id"] != first_headers["X-Request-Id"]  # the replay is its own request
    # Nothing reached the service again: a second create of the same provider would have been 409.
    assert await integration_count(integrations_service, tenant_id) == 1


async def test_a_kept_4xx_is_replayed_too(api, tenant):
    _tenant_id, key = tenant
    assert (await post(api, key, DOORDASH))[0] == 201
    idem = str(uuid.uuid4())
    status, _headers, body = await post(api, key, DOORDASH, idem)
    assert status == 409  # the service's own answer: the tenant already has a DoorDash integration
    status, replay_headers, replay_body = await post(api, key, DOORDASH, idem)
    assert (status, replay_headers.get("Idempotent-Replayed"), replay_body) == (409, "true", body)


async def test_the_same_key_with_a_different_request_is_422(api, tenant, integrations_service):
    tenant_id, key = tenant
    idem = str(uuid.uuid4())
    assert (await post(api, key, DOORDASH, idem))[0] == 201
    status, response_headers, body = await post(api, key, UBEREATS, idem)
    problem = json.loads(body)
    assert status == 422 and response_headers["Content-Type"].startswith("application/problem+json")
    assert problem["type"].endswith("/idempotency-key-reused")
    assert "Idempotent-Replayed" not in response_headers
    assert await integration_count(integrations_service, tenant_id) == 1


async def test_two_requests_started_together_have_one_effect(api, tenant, integrations_service):
    tenant_id, key = tenant
    idem = str(uuid.uuid4())
    results = await asyncio.gather(*(post(api, key, DOORDASH, idem) for _ in range(2)))
    statuses = sorted(status for status, _headers, _body in results)
    originals = [r for r in results if r[0] == 201 and "Idempotent-Replayed" not in r[1]]
    assert len(originals) == 1, statuses
    assert statuses in ([201, 409], [201, 201]), statuses  # the other one: still running (409) or replayed
    assert await integration_count(integrations_service, tenant_id) == 1
    status, replay_headers, _body = await post(api, key, DOORDASH, idem)
    assert (status, replay_headers.get("Idempotent-Replayed")) == (201, "true")


async def test_the_same_key_in_two_tenants_is_two_keys(api, gateway_service, integrations_service):
    first = await create_tenant(gateway_service.pool, unique("idem-a"))
    second = await create_tenant(gateway_service.pool, unique("idem-b"))
    idem = str(uuid.uuid4())
    answers = [await post(api, key, DOORDASH, idem) for _tenant_id, key in (first, second)]
    assert [status for status, _h, _b in answers] == [201, 201]
    assert all("Idempotent-Replayed" not in response_headers for _s, response_headers, _b in answers)
    ids = {json.loads(body)["data"]["id"] for _s, _h, body in answers}
    assert len(ids) == 2
    for tenant_id, _key in (first, second):
        assert await integration_count(integrations_service, tenant_id) == 1


async def test_an_expired_key_is_a_new_key_and_is_purged(api, tenant, gateway_service, integrations_service):
    tenant_id, key = tenant
    idem = str(uuid.uuid4())
    assert (await post(api, key, DOORDASH, idem))[0] == 201
    await gateway_service.pool.execute(
        "UPDATE idempotency_keys SET expires_at = now() - interval '1 second' WHERE tenant_id = $1", tenant_id)
    status, response_headers, _body = await post(api, key, UBEREATS, idem)  # no 422: the old request is forgotten
    assert status == 201 and "Idempotent-Replayed" not in response_headers
    assert await integration_count(integrations_service, tenant_id) == 2

    await gateway_service.pool.execute(
        "UPDATE idempotency_keys SET expires_at = now() - interval '1 second' WHERE tenant_id = $1", tenant_id)
    from gateway.http.idempotency import IdempotencyStore

    assert await IdempotencyStore(gateway_service.pool, ttl_s=60, lock_s=60).purge() >= 1
    assert await gateway_service.pool.fetchval("SELECT count(*) FROM idempotency_keys WHERE tenant_id = $1", tenant_id) == 0


async def test_the_kept_body_and_key_are_not_in_clear_in_postgres(api, tenant, gateway_service):
    tenant_id, key = tenant
    idem = f"order-{uuid.uuid4()}"
    status, _headers, body = await post(api, key, DOORDASH, idem)
    assert status == 201
    secret = json.loads(body)["data"]["inbound_secret"]
    row = await gateway_service.pool.fetchrow("SELECT * FROM idempotency_keys WHERE tenant_id = $1", tenant_id)
    stored = repr(dict(row))
    assert secret not in stored and secret.encode() not in bytes(row["body"]) and idem not in stored


@pytest.mark.parametrize("value", ["", "x" * 256, "caf\u00e9"], ids=["empty", "too-long", "not-ascii"])
async def test_a_malformed_key_is_422_naming_the_header(api, tenant, value):
    _tenant_id, key = tenant
    status, _headers, body = await post(api, key, DOORDASH, value)
    assert status == 422
    assert [error["field"] for error in json.loads(body)["errors"]] == ["Idempotency-Key"]


async def test_every_post_documents_the_header(api):
    async with api.get("/api/v1/openapi.json") as response:
        document = await response.json()
    posts = [endpoint for endpoint in ENDPOINTS if endpoint.method == "POST" and endpoint.auth]
    assert posts
    for endpoint in posts:
        operation = document["paths"][API_PREFIX + endpoint.path]["post"]
        assert "Idempotency-Key" in {p["name"] for p in operation["parameters"] if p["in"] == "header"}, endpoint.path
        assert "409" in operation["responses"]


@pytest.fixture
async def lonely(infra, tmp_path):
    """A gateway on its own broker where no service answers: every request ends 503 after the reply timeout."""
    broker = EmbeddedBroker(tmp_path / "tansu.log")
    bootstrap_servers = broker.start()
    await ensure_topics(bootstrap_servers, topics.ALL)
    settings = GatewaySettings(
        database_url=infra.database_url, kafka_bootstrap_servers=bootstrap_servers, gateway_port=0, health_port=0,
        reply_timeout_ms=1_500, kafka_request_timeout_ms=1_000,
    )
    runtime = await started(gateway_bootstrap(settings))
    tenant_id, key = await create_tenant(runtime.pool, unique("idem-lonely"))
    base = f"http://127.0.0.1:{runtime.ports['http']}"
    async with aiohttp.ClientSession(base_url=base, timeout=aiohttp.ClientTimeout(total=20)) as session:
        yield session, runtime, tenant_id, key
    await asyncio.wait_for(runtime.stop(), 30)
    broker.stop()


async def test_a_running_request_holds_its_key_and_a_5xx_releases_it(lonely):
    session, runtime, tenant_id, key = lonely
    idem = str(uuid.uuid4())
    first = asyncio.create_task(post(session, key, DOORDASH, idem))

    async def claimed() -> bool:
        return await runtime.pool.fetchval("SELECT count(*) FROM idempotency_keys WHERE tenant_id = $1", tenant_id) == 1

    await eventually(claimed, 10, "the first request to claim its key")
    status, response_headers, body = await post(session, key, DOORDASH, idem)
    assert status == 409 and json.loads(body)["type"].endswith("/idempotency-key-in-use")
    assert response_headers["Retry-After"] == "1"

    status, _headers, _body = await first
    assert status == 503  # nobody answered: not kept
    assert not await claimed()
    status, response_headers, _body = await post(session, key, DOORDASH, idem)  # retried, not replayed
    assert status == 503 and "Idempotent-Replayed" not in response_headers
