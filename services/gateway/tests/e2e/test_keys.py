"""API keys through the real gateway and the real CLI (``python -m gateway.cli key ...``): several
named keys per tenant, read and write scopes, revocation within AUTH_CACHE_SECONDS, rotation with a
grace period, last_used_at written without a write per request, digests only at rest."""
from __future__ import annotations

import asyncio
import os
import sys
import time

import aiohttp
import pytest
from multidict import CIMultiDict

from gateway.bootstrap import bootstrap as gateway_bootstrap
from gateway.config import GatewaySettings
from gateway.tenants import Authenticator, create_tenant, digest
from posint_common.testing import eventually, started, unique

CACHE_S = 1.0


@pytest.fixture
async def tenant(gateway_service, integrations_service) -> tuple[str, str, str]:
    name = unique("keys")
    tenant_id, key = await create_tenant(gateway_service.pool, name)
    return name, tenant_id, key


async def gateway_cli(infra, *args: str) -> tuple[int, str, str]:
    """The real CLI in its own process, as an operator runs it."""
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "gateway.cli", *args, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        env={**os.environ, "DATABASE_URL": infra.database_url},
    )
    out, err = await asyncio.wait_for(process.communicate(), 60)
    return process.returncode, out.decode(), err.decode()


async def new_key(infra, tenant_name: str, name: str, scope: str) -> str:
    status, out, err = await gateway_cli(infra, "key", "create", "--tenant", tenant_name, "--name", name, "--scope", scope)
    assert status == 0, err
    return out.strip().splitlines()[-1]


async def status_of(api, method: str, path: str, key: str, **kwargs) -> tuple[int, dict, dict]:
    async with api.request(method, path, headers={"Authorization": f"Bearer {key}"}, **kwargs) as response:
        body = await response.json(content_type=None) if response.status != 204 and method != "HEAD" else {}
        return response.status, CIMultiDict(response.headers), body


@pytest.fixture(scope="module")
async def short_cache_gateway(infra, integrations_service):
    """A gateway of its own whose key cache lasts CACHE_S, so revocation is seen within a second."""
    runtime = await started(gateway_bootstrap(infra.settings(GatewaySettings, gateway_port=0, auth_cache_seconds=CACHE_S)))
    yield runtime
    await asyncio.wait_for(runtime.stop(), 30)


@pytest.fixture
async def short_api(short_cache_gateway):
    base = f"http://127.0.0.1:{short_cache_gateway.ports['http']}"
    async with aiohttp.ClientSession(base_url=base, timeout=aiohttp.ClientTimeout(total=15)) as session:
        yield session


async def test_a_read_key_may_get_but_not_change_anything(api, infra, tenant, integrations_service):
    name, tenant_id, _key = tenant
    read_key = await new_key(infra, name, "dashboard", "read")
    assert (await status_of(api, "GET", "/api/v1/integrations", read_key))[0] == 200
    assert (await status_of(api, "HEAD", "/api/v1/integrations", read_key))[0] == 200
    document = {"name": "Own", "integration_type": "delivery", "provider": "custom", "config": {}, "credentials": {}}
    for method, path, kwargs in (("POST", "/api/v1/integrations", {"json": document}),
                                 ("PATCH", "/api/v1/integrations/1", {"json": {"name": "x"}}),
                                 ("DELETE", "/api/v1/integrations/1", {})):
        status, headers, body = await status_of(api, method, path, read_key, **kwargs)
        assert status == 403, (method, body)
        assert headers["Content-Type"].startswith("application/problem+json")
        assert body["type"].endswith("/insufficient-scope") and "'write'" in body["detail"] and method in body["detail"]
        assert 'scope="write"' in headers["WWW-Authenticate"]
    assert await integrations_service.pool.fetchval("SELECT count(*) FROM integrations WHERE tenant_id = $1", tenant_id) == 0


async def test_a_tenant_has_several_named_keys_listed_without_the_keys(api, infra, tenant):
    name, _tenant_id, first = tenant
    second = await new_key(infra, name, "ci", "write")
    third = await new_key(infra, name, "dashboard", "read")
    for key in (first, second, third):
        assert (await status_of(api, "GET", "/api/v1/integrations", key))[0] == 200
    status, out, err = await gateway_cli(infra, "key", "list", "--tenant", name)
    assert status == 0, err
    rows = [line.split("\t") for line in out.strip().splitlines()]
    assert rows[0][:3] == ["prefix", "name", "scope"]
    assert sorted((row[0], row[1], row[2]) for row in rows[1:]) == sorted(
        [(first[:12], "default", "write"), (second[:12], "ci", "write"), (third[:12], "dashboard", "read")])
    for key in (first, second, third):
        assert key not in out and key[12:] not in out


async def test_keys_are_stored_only_as_digests(gateway_service, tenant):
    _name, tenant_id, key = tenant
    rows = [dict(row) for row in await gateway_service.pool.fetch("SELECT * FROM api_keys WHERE tenant_id = $1", tenant_id)]
    assert [row["key_hash"] for row in rows] == [digest(key)]
    assert key not in repr(rows) and key[12:] not in repr(rows)


async def test_a_revoked_key_stops_working_within_the_cache_window(short_api, infra, tenant):
    name, _tenant_id, _key = tenant
    key = await new_key(infra, name, "to-revoke", "write")
    assert (await status_of(short_api, "GET", "/api/v1/integrations", key))[0] == 200  # now cached
    status, out, err = await gateway_cli(infra, "key", "revoke", key[:12])
    assert status == 0 and "revoked" in out, err
    revoked_at = time.monotonic()

    async def refused() -> bool:
        return (await status_of(short_api, "GET", "/api/v1/integrations", key))[0] == 401

    await eventually(refused, 10, "the revoked key to be refused")
    assert time.monotonic() - revoked_at < CACHE_S + 2  # the cache window, with room for a busy machine
    assert (await gateway_cli(infra, "key", "revoke", key[:12]))[0] == 1  # already revoked


async def test_rotation_keeps_the_old_key_for_the_grace_period(short_api, infra, tenant, gateway_service):
    name, _tenant_id, _key = tenant
    old = await new_key(infra, name, "pos-sync", "read")
    status, out, err = await gateway_cli(infra, "key", "rotate", old[:12])
    assert status == 0, err
    new = out.strip().splitlines()[-1]
    assert new != old and new.startswith("pk_")
    row = await gateway_service.pool.fetchrow(
        "SELECT name, scope, expires_at - now() AS left FROM api_keys WHERE key_prefix = $1", old[:12])
    assert 23.9 * 3600 < row["left"].total_seconds() <= 24 * 3600  # the default grace: 24 hours
    successor = await gateway_service.pool.fetchrow("SELECT name, scope, expires_at FROM api_keys WHERE key_prefix = $1", new[:12])
    assert (successor["name"], successor["scope"], successor["expires_at"]) == ("pos-sync", "read", None)
    uncached = Authenticator(gateway_service.pool, cache_seconds=0, miss_cache_seconds=0)
    assert (await uncached.principal_for(old)) is not None  # in its grace period: valid in Postgres, not just cached
    for key in (old, new):
        assert (await status_of(short_api, "GET", "/api/v1/integrations", key))[0] == 200

    status, _out, err = await gateway_cli(infra, "key", "rotate", new[:12], "--grace-hours", "0")  # no grace
    assert status == 0, err
    await eventually(lambda: _refused(short_api, new), 10, "the key rotated without grace to be refused")
    assert (await uncached.principal_for(old)) is not None  # the first rotation's grace is its own


async def _refused(api, key: str) -> bool:
    return (await status_of(api, "GET", "/api/v1/integrations", key))[0] == 401


async def test_last_used_at_is_written_once_not_per_request(api, infra, tenant, gateway_service):
    name, _tenant_id, _key = tenant
    key = await new_key(infra, name, "usage", "read")

    async def last_used():
        return await gateway_service.pool.fetchval("SELECT last_used_at FROM api_keys WHERE key_prefix = $1", key[:12])

    assert await last_used() is None
    assert (await status_of(api, "GET", "/api/v1/integrations", key))[0] == 200

    async def written() -> bool:
        return await last_used() is not None

    await eventually(written, 10, "last_used_at to be written")
    first = await last_used()
    for _ in range(5):
        assert (await status_of(api, "GET", "/api/v1/integrations", key))[0] == 200
    assert await last_used() == first  # within the minute: no further write


async def test_the_cli_refuses_what_it_cannot_do(infra, tenant):
    name, _tenant_id, _key = tenant
    assert (await gateway_cli(infra, "key", "create", "--tenant", unique("nobody"), "--name", "x"))[0] == 1
    assert (await gateway_cli(infra, "key", "create", "--tenant", name, "--name", "x", "--scope", "admin"))[0] == 2
    assert (await gateway_cli(infra, "key", "create", "--tenant", name, "--name", ""))[0] == 2
    assert (await gateway_cli(infra, "key", "rotate", "pk_unknown123"))[0] == 1
    assert (await gateway_cli(infra, "key", "revoke", "pk_unknown123"))[0] == 1
    assert (await gateway_cli(infra, "key", "list", "--tenant", unique("nobody")))[0] == 1
