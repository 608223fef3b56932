"""Per-key limits on a gateway of its own with small limits: a token bucket (429 with Retry-After,
RateLimit-* headers on every authenticated response, recovery once tokens drip back) and a bound
on requests in flight per key."""
from __future__ import annotations

import asyncio

import aiohttp
import pytest
from multidict import CIMultiDict

from gateway.bootstrap import bootstrap as gateway_bootstrap
from gateway.config import GatewaySettings
from gateway.tenants import create_key, create_tenant
from posint_common.testing import eventually, started, unique

BURST, PER_SECOND = 5, 5.0
RATE_HEADERS = ("RateLimit-Limit", "RateLimit-Remaining", "RateLimit-Reset", "RateLimit-Policy")


@pytest.fixture(scope="module")
async def limited(infra, integrations_service):
    settings = infra.settings(GatewaySettings, gateway_port=0, rate_limit_burst=BURST, rate_limit_per_second=PER_SECOND,
                              max_in_flight_per_key=1)
    runtime = await started(gateway_bootstrap(settings))
    yield runtime
    await asyncio.wait_for(runtime.stop(), 30)


@pytest.fixture
async def api(limited):
    base = f"http://127.0.0.1:{limited.ports['http']}"
    async with aiohttp.ClientSession(base_url=base, timeout=aiohttp.ClientTimeout(total=15)) as session:
        yield session


@pytest.fixture
async def key(limited) -> str:
    """A fresh key per test: a full bucket."""
    return (await create_tenant(limited.pool, unique("limits")))[1]


async def get(api, key: str, path: str = "/api/v1/integrations"):
    async with api.get(path, headers={"Authorization": f"Bearer {key}"}) as response:
        return response.status, CIMultiDict(response.headers), await response.json(content_type=None)


async def test_past_the_burst_is_429_with_retry_after_and_it_recovers(api, key):
    remaining = []
    for _ in range(BURST):
        status, headers, _body = await get(api, key)
        assert status == 200
        assert headers["RateLimit-Limit"] == str(BURST) and headers["RateLimit-Policy"] == f"{BURST};w=1"
        remaining.append(int(headers["RateLimit-Remaining"]))
    assert remaining[0] == BURST - 1 and remaining == sorted(remaining, reverse=True)

    status, headers, body = await get(api, key)
    if status == 200:  # a token dripped back meanwhile on a slow machine: spend it
        status, headers, body = await get(api, key)
    assert status == 429
    assert headers["Content-Type"].startswith("application/problem+json")
    assert body["type"].endswith("/rate-limited") and body["request_id"] == headers["X-Request-Id"]
    assert int(headers["Retry-After"]) >= 1
    assert headers["RateLimit-Remaining"] == "0" and int(headers["RateLimit-Reset"]) >= 1

    async def recovered() -> bool:
        return (await get(api, key))[0] == 200

    await eventually(recovered, 5, "the bucket to refill")


async def test_every_authenticated_response_carries_the_headers(api, key):
    status, headers, _body = await get(api, key, "/api/v1/integrations?lmit=5")
    assert status == 422 and all(name in headers for name in RATE_HEADERS)
    status, headers, _body = await get(api, key, "/api/v1/integrations/999999999")
    assert status == 404 and all(name in headers for name in RATE_HEADERS)
    status, headers, _body = await get(api, "pk_" + "x" * 43)
    assert status == 401 and not any(name in headers for name in RATE_HEADERS)  # no key, no bucket


async def test_a_scope_refusal_carries_the_headers_and_spends_a_token(api, limited):
    tenant_name = unique("limits-read")
    await create_tenant(limited.pool, tenant_name)
    read_key = await create_key(limited.pool, tenant_name, "dashboard", "read")
    async with api.delete("/api/v1/integrations/1", headers={"Authorization": f"Bearer {read_key}"}) as response:
        assert response.status == 403
        assert response.headers["RateLimit-Remaining"] == str(BURST - 1)


async def test_keys_have_their_own_buckets(api, limited, key):
    for _ in range(BURST + 1):
        await get(api, key)
    other = (await create_tenant(limited.pool, unique("limits-other")))[1]
    status, headers, _body = await get(api, other)
    assert status == 200 and headers["RateLimit-Remaining"] == str(BURST - 1)


async def test_past_the_in_flight_bound_is_429(api, limited, key):
    # A POST whose body never finishes stays in flight (the gateway has taken it and waits for the body).
    reader, writer = await asyncio.open_connection("127.0.0.1", limited.ports["http"])
    writer.write(b"POST /api/v1/integrations HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                 b"Authorization: Bearer " + key.encode() + b"\r\nContent-Length: 100\r\n\r\n{")
    await writer.drain()
    try:
        async def refused() -> bool:
            status, headers, body = await get(api, key)
            if status == 429:
                assert body["type"].endswith("/too-many-in-flight") and headers["Retry-After"] == "1"
            return status == 429

        await eventually(refused, 10, "a second request of the key to be refused while the first is in flight")
    finally:
        writer.close()

    async def admitted() -> bool:
        return (await get(api, key))[0] == 200

    await eventually(admitted, 10, "the key to be admitted once its request ended")
