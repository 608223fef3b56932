"""GET /api/v1/integrations through gateway -> Kafka -> integrations -> Postgres -> reply."""
import re

import pytest

PROBLEM_KEYS = {"type", "title", "status", "detail", "request_id"}


def auth(tenant) -> dict:
    return {"Authorization": f"Bearer {tenant.key}"}


async def test_returns_the_contract_shape(api, tenants):
    async with api.get("/api/v1/integrations", headers=auth(tenants["a"])) as response:
        assert response.status == 200
        assert response.content_type == "application/json"
        body = await response.json()
    assert list(body) == ["data"]
    doordash, quickbooks = body["data"]
    assert set(doordash) == {"id", "name", "integration_type", "provider", "is_active", "last_sync_at"}
    assert (doordash["name"], doordash["integration_type"], doordash["provider"], doordash["is_active"]) == (
        "DoorDash", "delivery", "doordash", True)
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", doordash["last_sync_at"])
    assert set(quickbooks) == {"id", "name", "integration_type", "provider", "is_active"}  # no last_sync_at when unset
    assert (quickbooks["name"], quickbooks["integration_type"], quickbooks["provider"]) == ("QuickBooks", "accounting", "quickbooks")
    assert isinstance(doordash["id"], int) and doordash["id"] < quickbooks["id"]


async def test_a_key_sees_only_its_own_tenants_integrations(api, tenants):
    async with api.get("/api/v1/integrations", headers=auth(tenants["b"])) as response:
        body = await response.json()
    assert [i["provider"] for i in body["data"]] == ["ubereats"]


@pytest.mark.parametrize("headers", [{}, {"Authorization": "Bearer pk_wrong"}, {"Authorization": "Basic abc"}, {"Authorization": "Bearer "}],
                         ids=["none", "wrong-key", "wrong-scheme", "empty"])
async def test_missing_or_wrong_key_is_401_problem_json(api, tenants, headers):
    async with api.get("/api/v1/integrations", headers=headers) as response:
        assert response.status == 401
        assert response.content_type == "application/problem+json"
        assert response.headers["WWW-Authenticate"].startswith("Bearer")
        body = await response.json()
    assert PROBLEM_KEYS <= set(body) and body["status"] == 401


async def test_request_id_is_echoed_or_generated(api, tenants):
    async with api.get("/api/v1/integrations", headers={**auth(tenants["a"]), "X-Request-Id": "trace-123"}) as response:
        assert response.headers["X-Request-Id"] == "trace-123"
    async with api.get("/api/v1/integrations", headers=auth(tenants["a"])) as response:
        assert re.fullmatch(r"[0-9a-f]{32}", response.headers["X-Request-Id"])
    async with api.get("/api/v1/integrations", headers={"X-Request-Id": "bad id with spaces"}) as response:
        body = await response.json()
        assert response.headers["X-Request-Id"] == body["request_id"] != "bad id with spaces"


async def test_pages_follow_the_link_header(api, tenants):
    async with api.get("/api/v1/integrations?limit=1", headers=auth(tenants["a"])) as response:
        first = (await response.json())["data"]
        link = response.headers["Link"]
    next_path = re.fullmatch(r'<([^>]+)>; rel="next"', link).group(1)
    async with api.get(next_path, headers=auth(tenants["a"])) as response:
        second = (await response.json())["data"]
    assert [i["provider"] for i in first + second] == ["doordash", "quickbooks"]


@pytest.mark.parametrize("query", ["limit=0", "limit=abc", "limit=201", "after=-1"])
async def test_invalid_query_is_422_with_field_errors(api, tenants, query):
    async with api.get(f"/api/v1/integrations?{query}", headers=auth(tenants["a"])) as response:
        assert response.status == 422
        assert response.content_type == "application/problem+json"
        body = await response.json()
    assert body["errors"][0]["field"] == query.split("=")[0] and body["errors"][0]["message"]


async def test_unknown_route_is_404_and_wrong_method_is_405(api, tenants):
    async with api.get("/api/v1/nothing-here", headers=auth(tenants["a"])) as response:
        assert (response.status, response.content_type) == (404, "application/problem+json")
        assert (await response.json())["status"] == 404
    async with api.delete("/api/v1/integrations", headers=auth(tenants["a"])) as response:
        assert (response.status, response.content_type) == (405, "application/problem+json")
        assert "GET" in (await response.json())["detail"]


async def test_every_route_is_documented_in_openapi(api, gateway_service):
    async with api.get("/api/v1/openapi.json") as response:
        assert response.status == 200
        document = await response.json()
    assert document["openapi"].startswith("3.1")
    from gateway.http.app import create_app

    app = create_app(None, None, 1024)
    routes = {(r.method.lower(), r.resource.canonical) for r in app.router.routes() if r.method != "HEAD"}
    assert routes, "the app has routes"
    for method, path in routes:
        assert method in document["paths"].get(path, {}), f"{method.upper()} {path} is not in openapi.json"
    operation = document["paths"]["/api/v1/integrations"]["get"]
    schema_ref = operation["responses"]["200"]["content"]["application/json"]["schema"]["$ref"]
    assert schema_ref.split("/")[-1] in document["components"]["schemas"]


async def test_request_id_travels_through_kafka_as_the_correlation_id(api, tenants, infra):
    from posint_common.contracts import topics
    from posint_common.testing import read_topic, unique

    request_id = unique("corr")
    async with api.get("/api/v1/integrations", headers={**auth(tenants["a"]), "X-Request-Id": request_id}) as response:
        assert response.status == 200
    ours = lambda envelope: envelope.correlationid == request_id  # noqa: E731
    query = await read_topic(infra.bootstrap_servers, topics.INTEGRATIONS_QUERIES, 1, match=ours)
    reply = await read_topic(infra.bootstrap_servers, topics.GATEWAY_REPLIES, 1, match=ours)
    assert len(query) == 1 and query[0].tenantid == tenants["a"].id and query[0].replyto.startswith(topics.GATEWAY_REPLIES)
    assert len(reply) == 1 and reply[0].causationid == query[0].id
