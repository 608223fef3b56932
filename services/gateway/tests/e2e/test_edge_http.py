"""The gateway's HTTP edge over real sockets: whatever arrives, the answer is problem+json with a
request id and never echoes the input; methods, bodies and query strings are checked once, in the
generic view, for every endpoint."""
import asyncio
import json
import re

import pytest


PROBLEM_JSON = "application/problem+json"


async def raw_exchange(port: int, raw: bytes) -> tuple[int, dict[str, str], bytes]:
    """Send raw bytes to the gateway and read one answer (the connection closes after an error)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(raw)
        await writer.drain()
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
        lines = head.decode("latin-1").split("\r\n")
        status = int(lines[0].split(" ")[1])
        headers = {name.strip().lower(): value.strip() for name, _, value in (line.partition(":") for line in lines[1:] if line)}
        body = await asyncio.wait_for(reader.readexactly(int(headers.get("content-length", "0"))), 10)
        return status, headers, body
    finally:
        writer.close()


def bearer_header(tenant) -> dict:
    return {"Authorization": f"Bearer {tenant.key}"}
SECRET = "pk_SECRETSECRETSECRET1234567890"

MALFORMED = {
    "control-byte-in-header": (b"GET /api/v1/integrations HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer "
                               + SECRET.encode() + b"\x01zz\r\n\r\n", {400}),
    "oversized-header": (b"GET /api/v1/integrations HTTP/1.1\r\nHost: x\r\nX-Big: " + SECRET.encode() * 400 + b"\r\n\r\n", {431}),
    "oversized-request-line": (b"GET /" + SECRET.encode() * 400 + b" HTTP/1.1\r\nHost: x\r\n\r\n", {400, 414, 431}),
    "too-many-headers": (b"GET / HTTP/1.1\r\nHost: x\r\n" + b"".join(b"X-H%d: v\r\n" % i for i in range(300)) + b"\r\n", {400, 431}),
    "garbage-request-line": (SECRET.encode() + b"\r\n\r\n", {400}),
    "invalid-method": (b"G@T" + SECRET.encode() + b" / HTTP/1.1\r\nHost: x\r\n\r\n", {400}),
    "bad-version": (b"GET / HTTP/9." + SECRET.encode() + b"\r\nHost: x\r\n\r\n", {400}),
    "header-without-colon": (b"GET / HTTP/1.1\r\nHost: x\r\n" + SECRET.encode() + b"\r\n\r\n", {400}),
    "unknown-expectation": (b"GET /api/v1/integrations HTTP/1.1\r\nHost: x\r\nExpect: " + SECRET.encode() + b"\r\n\r\n", {417}),
    "unknown-expectation-unrouted": (b"GET /nowhere HTTP/1.1\r\nHost: x\r\nExpect: " + SECRET.encode() + b"\r\n\r\n", {404, 417}),
}


@pytest.mark.parametrize("raw, statuses", MALFORMED.values(), ids=MALFORMED.keys())
async def test_what_aiohttp_rejects_is_still_a_problem_with_a_request_id(gateway_service, raw, statuses):
    status, headers, body = await raw_exchange(gateway_service.ports["http"], raw)
    assert status in statuses
    assert headers["content-type"].startswith(PROBLEM_JSON)
    problem = json.loads(body)
    assert problem["status"] == status and problem["title"]
    assert re.fullmatch(r"[0-9a-f]{32}", headers["x-request-id"]) and problem["request_id"] == headers["x-request-id"]
    assert SECRET not in body.decode("latin-1") and "SECRET" not in json.dumps(problem)


async def test_405_names_the_allowed_methods_in_allow(api, tenants):
    async with api.delete("/api/v1/integrations", headers=bearer_header(tenants["a"])) as response:
        assert response.status == 405
        assert set(response.headers["Allow"].replace(" ", "").split(",")) == {"GET", "HEAD", "POST"}
        assert response.headers["X-Request-Id"]


async def test_head_works_wherever_get_does(api, tenants):
    for path in ("/api/v1/integrations", "/api/v1/openapi.json"):
        async with api.get(path, headers=bearer_header(tenants["a"])) as got:
            assert got.status == 200
        async with api.head(path, headers=bearer_header(tenants["a"])) as head:
            assert head.status == 200, path
            assert head.headers["Content-Type"] == got.headers["Content-Type"]
            assert await head.read() == b""


async def test_a_body_on_a_get_is_refused(api, tenants):
    async with api.get("/api/v1/integrations", data=b'{"limit": 1}', headers=bearer_header(tenants["a"])) as response:
        assert (response.status, response.content_type) == (400, PROBLEM_JSON)
        assert "takes no body" in (await response.json())["detail"]
    async with api.get("/api/v1/integrations", data=b"x" * 2_000_000, headers=bearer_header(tenants["a"])) as response:
        assert (response.status, response.content_type) == (413, PROBLEM_JSON)


async def test_an_empty_json_object_on_a_post_without_body_is_no_body(api, tenants):
    """Many clients send ``{}`` with every POST: taken as no body; anything in it is still refused."""
    path = "/api/v1/external-orders/999999999/ready"
    for body in (b"{}", b"{}\n"):
        async with api.post(path, data=body, headers={"Content-Type": "application/json", **bearer_header(tenants["a"])}) as response:
            assert (response.status, response.content_type) == (404, PROBLEM_JSON), await response.text()
    async with api.post(path, data=b'{"reason": "x"}', headers={"Content-Type": "application/json",
                                                             **bearer_header(tenants["a"])}) as response:
        assert (response.status, response.content_type) == (400, PROBLEM_JSON)
        assert "takes no body" in (await response.json())["detail"]


@pytest.mark.parametrize("query, field", [
    ("lmit=5", "lmit"), ("limit=5&limit=6", "limit"), ("after=1&after=2", "after"), ("limit=5&%00x=1", "\x00x"),
])
async def test_unknown_or_repeated_query_parameters_are_422_naming_them(api, tenants, query, field):
    async with api.get(f"/api/v1/integrations?{query}", headers=bearer_header(tenants["a"])) as response:
        assert (response.status, response.content_type) == (422, PROBLEM_JSON)
        body = await response.json()
    assert field in [error["field"] for error in body["errors"]]


@pytest.mark.parametrize("value", ["1.0", "+5", "%205", "5%20", "0x10", "1_0", "1e1", "５"])
async def test_only_plain_decimal_integers_are_accepted(api, tenants, value):
    async with api.get(f"/api/v1/integrations?limit={value}", headers=bearer_header(tenants["a"])) as response:
        assert response.status == 422, value
        assert (await response.json())["errors"][0]["field"] == "limit"


@pytest.mark.parametrize("value", ["9223372036854775808", "99999999999999999999999999", "-9223372036854775809"])
async def test_an_integer_past_what_postgres_stores_is_422_naming_it(api, tenants, value):
    async with api.get(f"/api/v1/integrations?after={value}", headers=bearer_header(tenants["a"])) as response:
        assert (response.status, response.content_type) == (422, PROBLEM_JSON)
        assert (await response.json())["errors"][0]["field"] == "after"


async def test_the_largest_bigint_cursor_is_an_empty_page(api, tenants):
    async with api.get("/api/v1/integrations?after=9223372036854775807", headers=bearer_header(tenants["a"])) as response:
        assert response.status == 200
        assert await response.json() == {"data": []}


async def test_after_a_parser_error_the_connection_closes_with_one_answer(gateway_service):
    """What follows the bad request on a keep-alive connection is not answered: it cannot be trusted."""
    reader, writer = await asyncio.open_connection("127.0.0.1", gateway_service.ports["http"])
    try:
        writer.write(b"GET / HTTP/1.1\r\nHost: x\r\nX-Bad: a\x7fb\r\n\r\nGET /api/v1/openapi.json HTTP/1.1\r\nHost: x\r\n\r\n")
        everything = await asyncio.wait_for(reader.read(), 10)  # returns at EOF: the gateway closed
    finally:
        writer.close()
    assert everything.count(b"HTTP/1.") == 1 and everything.split(b" ")[1] == b"400"
    assert b"application/problem+json" in everything


async def test_openapi_documents_the_edge_answers_and_the_integer_bounds(api):
    async with api.get("/api/v1/openapi.json") as response:
        document = await response.json()
    operation = document["paths"]["/api/v1/integrations"]["get"]
    assert {"400", "401", "413", "422", "431", "503", "504"} <= set(operation["responses"])
    (after,) = [p for p in operation["parameters"] if p["name"] == "after"]
    assert 2**63 - 1 in [option.get("maximum") for option in after["schema"]["anyOf"]]
