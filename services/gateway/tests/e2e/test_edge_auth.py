"""Authentication at the edge: malformed credentials are a plain 401, and a flood of bad keys is not a
flood of Postgres queries (counted by the gateway's own lookup metric on its /metrics endpoint)."""
import asyncio
import re
import uuid

import aiohttp
import pytest

PROBLEM_JSON = "application/problem+json"


async def lookups(session: aiohttp.ClientSession, health_port: int) -> float:
    """posint_gateway_auth_lookups_total summed over outcomes: each is one query against api_keys."""
    async with session.get(f"http://127.0.0.1:{health_port}/metrics") as response:
        text = await response.text()
    return sum(float(value) for value in re.findall(r"^posint_gateway_auth_lookups_total\{[^}]*\} (\S+)$", text, re.M))


@pytest.mark.parametrize("value", [
    b"Bearer pk_\xff\xfe\xfd-not-utf8", b"Bearer pk_caf\xc3\xa9", b"Bearer pk_a b", b"Bearer " + b"x" * 5000, b"Bearer\tpk_tab",
], ids=["not-utf8", "non-ascii", "space", "huge", "tab"])
async def test_malformed_credentials_are_401(gateway_service, value):
    reader, writer = await asyncio.open_connection("127.0.0.1", gateway_service.ports["http"])
    try:
        writer.write(b"GET /api/v1/integrations HTTP/1.1\r\nHost: x\r\nConnection: close\r\nAuthorization: " + value + b"\r\n\r\n")
        answer = await asyncio.wait_for(reader.read(), 10)
    finally:
        writer.close()
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.split(b" ")[1] == b"401", answer[:200]
    assert b"application/problem+json" in head and b"WWW-Authenticate: Bearer" in head
    assert value[7:] not in body


async def test_repeated_bad_keys_are_answered_from_the_negative_cache(api, gateway_service):
    bad = {"Authorization": f"Bearer pk_{uuid.uuid4().hex}{uuid.uuid4().hex}"}
    before = await lookups(api, gateway_service.ports["health"])
    for _ in range(20):
        async with api.get("/api/v1/integrations", headers=bad) as response:
            assert response.status == 401
    await asyncio.gather(*(api.get("/api/v1/integrations", headers=bad) for _ in range(20)))
    assert await lookups(api, gateway_service.ports["health"]) - before == 1


async def test_concurrent_lookups_of_one_unknown_key_share_one_query(api, gateway_service):
    bad = {"Authorization": f"Bearer pk_{uuid.uuid4().hex}{uuid.uuid4().hex}"}
    before = await lookups(api, gateway_service.ports["health"])

    async def one() -> int:
        async with api.get("/api/v1/integrations", headers=bad) as response:
            return response.status

    assert set(await asyncio.gather(*(one() for _ in range(30)))) == {401}
    assert await lookups(api, gateway_service.ports["health"]) - before == 1


async def test_a_key_that_is_not_key_shaped_never_reaches_postgres(api, gateway_service):
    before = await lookups(api, gateway_service.ports["health"])
    for key in ("nope", "pk_short", "Bearer", "pk_" + "a" * 500):
        async with api.get("/api/v1/integrations", headers={"Authorization": f"Bearer {key}"}) as response:
            assert response.status == 401
    assert await lookups(api, gateway_service.ports["health"]) == before


async def test_good_keys_still_work_after_a_flood_of_bad_ones(api, tenants):
    for _ in range(50):
        async with api.get("/api/v1/integrations", headers={"Authorization": f"Bearer pk_{uuid.uuid4().hex}{uuid.uuid4().hex}"}) as response:
            assert response.status == 401
    async with api.get("/api/v1/integrations", headers={"Authorization": f"Bearer {tenants['a'].key}"}) as response:
        assert response.status == 200
