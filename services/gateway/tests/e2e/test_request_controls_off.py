"""REQUEST_CONTROLS=false, the bench's "foundation" gateway (bench/gateway_features.py): no per-key limits,
no scopes, no Idempotency-Key handling. On by default; off, the gateway must really leave them out, or
the bench's ON/OFF ratio measures nothing."""
from __future__ import annotations

import asyncio

import aiohttp
import pytest

from gateway.bootstrap import bootstrap as gateway_bootstrap
from gateway.config import GatewaySettings
from gateway.tenants import create_key, create_tenant
from posint_common.testing import started, unique


def test_controls_are_on_by_default():
    assert GatewaySettings.model_fields["request_controls"].default is True


@pytest.fixture(scope="module")
async def bare(infra, integrations_service):
    settings = infra.settings(GatewaySettings, gateway_port=0, request_controls=False, rate_limit_burst=1,
                              rate_limit_per_second=0.01)
    runtime = await started(gateway_bootstrap(settings))
    yield runtime
    await asyncio.wait_for(runtime.stop(), 30)


async def test_no_limits_no_scopes_no_idempotency(bare):
    name = unique("bare")
    _tenant_id, write_key = await create_tenant(bare.pool, name)
    read_key = await create_key(bare.pool, name, "reader", "read")
    base = f"http://127.0.0.1:{bare.ports['http']}"
    async with aiohttp.ClientSession(base_url=base, timeout=aiohttp.ClientTimeout(total=15)) as api:
        for _ in range(3):  # a bucket of 1 at 0.01/s would refuse the second
            async with api.get("/api/v1/integrations", headers={"Authorization": f"Bearer {write_key}"}) as response:
                assert response.status == 200
                assert not any(h.lower().startswith("ratelimit") for h in response.headers)
        body = {"name": "Bare", "integration_type": "delivery", "provider": "custom", "config": {}, "credentials": {}}
        headers = {"Authorization": f"Bearer {read_key}", "Idempotency-Key": unique("idem")}
        async with api.post("/api/v1/integrations", json=body, headers=headers) as response:
            assert response.status == 201, await response.text()  # a read key writes: no scopes
        async with api.post("/api/v1/integrations", json=body, headers=headers) as response:
            assert response.status == 409  # the same key again reaches the service: nothing replayed
            assert "Idempotent-Replayed" not in response.headers
