"""Managing webhook endpoints through the real gateway, integrations service and webhook
dispatcher: the dispatcher learns each tenant's integrations from integrations.events, seals the
signing secret, and answers only the owning tenant."""
from __future__ import annotations

import base64

import pytest

from gateway.tenants import create_tenant
from posint_common.contracts.webhooks import CATALOG
from posint_common.testing import Tenant, eventually, unique
from posint_common.vault import Sealed, Undecryptable, new_key_entry
from webhook_dispatcher.adapters.vault import associated_data
from webhook_dispatcher.config import WebhooksSettings

FIELDS = {"id", "integration_id", "url", "events", "is_active", "created_at"}


@pytest.fixture(scope="module")
async def dispatcher(webhooks_service, integrations_service):
    """The session's one dispatcher (conftest): two in one session would share its consumer groups."""
    assert webhooks_service.settings.webhooks_allow_http  # as in dev and tests
    return webhooks_service


async def new_tenant(gateway_service) -> Tenant:
    return Tenant(*await create_tenant(gateway_service.pool, unique("webhooks")))


async def integration_of(api, dispatcher, tenant: Tenant) -> int:
    """A custom integration made through the API, once the dispatcher has learnt it from its event."""
    body = {"name": "Web shop", "integration_type": "delivery", "provider": "custom", "config": {}, "credentials": {}}
    async with api.post("/api/v1/integrations", json=body, headers=tenant.auth) as response:
        assert response.status == 201, await response.text()
        integration_id = (await response.json())["data"]["id"]

    async def learnt() -> bool:
        return await dispatcher.pool.fetchval(
            "SELECT true FROM webhook_dispatcher.known_integrations WHERE id = $1 AND tenant_id = $2 AND NOT deleted",
            integration_id, tenant.id)

    await eventually(learnt, 30, "the dispatcher to learn the integration")
    return integration_id


@pytest.fixture(scope="module")
async def owner(api_module, gateway_service, dispatcher):
    tenant = await new_tenant(gateway_service)
    return tenant, await integration_of(api_module, dispatcher, tenant)


@pytest.fixture(scope="module")
async def api_module(gateway_service):
    import aiohttp

    base = f"http://127.0.0.1:{gateway_service.ports['http']}"
    async with aiohttp.ClientSession(base_url=base, timeout=aiohttp.ClientTimeout(total=15)) as session:
        yield session


async def register(api, tenant: Tenant, **body) -> tuple[int, dict]:
    async with api.post("/api/v1/webhooks", json=body, headers=tenant.auth) as response:
        return response.status, await response.json()


async def test_create_answers_201_with_the_secret_once_and_seals_it(api_module, owner, dispatcher):
    tenant, integration_id = owner
    url = "https://hooks.example.com/posint"
    status, document = await register(api_module, tenant, integration_id=integration_id, url=url,
                                      events=["order.created", "order.accepted"])
    assert status == 201, document
    created = document["data"]
    assert set(created) == FIELDS | {"secret"}
    assert created["url"] == url and created["events"] == ["order.created", "order.accepted"] and created["is_active"] is True
    assert created["secret"].startswith("whsec_") and len(base64.b64decode(created["secret"][6:])) == 32
    row = await dispatcher.pool.fetchrow(
        "SELECT tenant_id, secret, secret_key_id FROM webhook_dispatcher.endpoints WHERE id = $1", created["id"])
    keys = dispatcher.settings.key_ring
    assert created["secret"].encode() not in bytes(row["secret"]) and row["secret_key_id"] == keys.primary
    sealed = Sealed(row["secret_key_id"], bytes(row["secret"]))
    assert keys.open(sealed, associated_data(tenant.id, created["id"])).decode() == created["secret"]
    with pytest.raises(Undecryptable):  # bound to its tenant and endpoint
        keys.open(sealed, associated_data(tenant.id, created["id"] + 1))

    async with api_module.get(f"/api/v1/webhooks/{created['id']}", headers=tenant.auth) as response:
        assert response.status == 200
        shown = (await response.json())["data"]
    assert set(shown) == FIELDS and shown == {key: created[key] for key in FIELDS}  # the secret never again


@pytest.mark.parametrize("field, value, message", [
    ("url", "ftp://hooks.example.com/x", "https"),
    ("url", "/relative/path", "https"),
    ("url", "https://user:pass@hooks.example.com/x", "credentials"),
    ("url", "https://token@hooks.example.com/x", "credentials"),
    ("url", "https://hooks.example.com/" + "a" * 2048, "2048"),
    ("url", "https://10.0.0.1/x", "may not reach"),
    ("url", "https://169.254.169.254/latest/meta-data", "may not reach"),
    ("url", "https://[::ffff:192.168.0.1]/x", "may not reach"),
    ("url", "https://[fd00:ec2::254]/x", "may not reach"),
    ("url", "https://hooks.example.com/a b", "spaces"),
    ("events", [], "at least 1"),
    ("events", ["order.created", "order.eaten"], "valid: order.created"),
])
async def test_each_bad_field_is_a_422_naming_it(api_module, owner, field, value, message):
    tenant, integration_id = owner
    body = {"integration_id": integration_id, "url": "https://hooks.example.com/x", "events": ["order.created"], field: value}
    status, problem = await register(api_module, tenant, **body)
    assert status == 422, problem
    assert [error["field"] for error in problem["errors"]][0].startswith(field)
    assert any(message in error["message"] for error in problem["errors"]), problem
    if field == "events" and value:
        assert all(name in problem["errors"][0]["message"] for name in CATALOG)


async def test_plain_http_only_where_the_setting_allows_it(api_module, owner, infra):
    tenant, integration_id = owner
    status, document = await register(api_module, tenant, integration_id=integration_id,
                                      url="http://127.0.0.1:9/hook", events=["order.created"])
    assert status == 201, document  # loopback is in EGRESS_ALLOW and http allowed here, as in dev and tests
    from webhook_dispatcher.domain.model import url_error

    strict = infra.settings(WebhooksSettings, webhooks_encryption_keys=new_key_entry("strict"))
    assert "https" in url_error("http://hooks.example.com/x", strict.webhooks_allow_http, strict.egress)
    assert url_error("https://hooks.example.com/x", strict.webhooks_allow_http, strict.egress) is None


async def test_an_integration_that_is_not_the_tenants_is_404(api_module, gateway_service, owner, dispatcher):
    tenant, integration_id = owner
    other = await new_tenant(gateway_service)
    body = {"integration_id": integration_id, "url": "https://hooks.example.com/x", "events": ["order.created"]}
    status, problem = await register(api_module, other, **body)
    assert status == 404 and "integration" in problem["detail"]
    status, problem = await register(api_module, tenant, **{**body, "integration_id": 9_000_000_000})
    assert status == 404


async def test_a_deleted_integration_takes_no_new_endpoint(api_module, gateway_service, dispatcher):
    tenant = await new_tenant(gateway_service)
    integration_id = await integration_of(api_module, dispatcher, tenant)
    async with api_module.delete(f"/api/v1/integrations/{integration_id}", headers=tenant.auth) as response:
        assert response.status == 204

    async def forgotten() -> bool:
        return await dispatcher.pool.fetchval(
            "SELECT deleted FROM webhook_dispatcher.known_integrations WHERE id = $1", integration_id)

    await eventually(forgotten, 30, "the dispatcher to learn the deletion")
    status, _ = await register(api_module, tenant, integration_id=integration_id, url="https://h.example.com/x",
                               events=["order.created"])
    assert status == 404


async def test_list_is_paginated_and_patch_delete_work(api_module, gateway_service, dispatcher):
    tenant = await new_tenant(gateway_service)
    integration_id = await integration_of(api_module, dispatcher, tenant)
    ids = []
    for number in range(3):
        status, document = await register(api_module, tenant, integration_id=integration_id,
                                          url=f"https://hooks.example.com/{number}", events=["order.created"])
        assert status == 201
        ids.append(document["data"]["id"])
    async with api_module.get("/api/v1/webhooks?limit=2", headers=tenant.auth) as response:
        page = await response.json()
        assert response.status == 200 and [item["id"] for item in page["data"]] == ids[:2]
        assert all(set(item) == FIELDS for item in page["data"])
        assert f"after={ids[1]}" in response.headers["Link"]
    async with api_module.get(f"/api/v1/webhooks?limit=2&after={ids[1]}", headers=tenant.auth) as response:
        assert [item["id"] for item in (await response.json())["data"]] == ids[2:] and "Link" not in response.headers

    patch = {"events": ["payment.completed", "order.ready"], "is_active": False, "url": "https://other.example.com/h"}
    async with api_module.patch(f"/api/v1/webhooks/{ids[0]}", json=patch, headers=tenant.auth) as response:
        assert response.status == 200
        assert {key: value for key, value in (await response.json())["data"].items() if key in patch} == patch
    async with api_module.patch(f"/api/v1/webhooks/{ids[0]}", json={"url": "https://127.0.0.1.example/x?a=1",
                                                                     "events": ["nope"]}, headers=tenant.auth) as response:
        assert response.status == 422
    async with api_module.patch(f"/api/v1/webhooks/{ids[0]}", json={"url": "https://10.1.1.1/"}, headers=tenant.auth) as response:
        assert response.status == 422 and (await response.json())["errors"][0]["field"] == "url"
    async with api_module.patch(f"/api/v1/webhooks/{ids[0]}", json={}, headers=tenant.auth) as response:
        assert response.status == 422
    async with api_module.delete(f"/api/v1/webhooks/{ids[0]}", headers=tenant.auth) as response:
        assert response.status == 204
    async with api_module.get(f"/api/v1/webhooks/{ids[0]}", headers=tenant.auth) as response:
        assert response.status == 404
    async with api_module.get("/api/v1/webhooks", headers=tenant.auth) as response:
        assert [item["id"] for item in (await response.json())["data"]] == ids[1:]


async def test_another_tenants_endpoint_is_404_on_every_method(api_module, gateway_service, owner):
    tenant, integration_id = owner
    status, document = await register(api_module, tenant, integration_id=integration_id,
                                      url="https://hooks.example.com/mine", events=["order.created"])
    assert status == 201
    endpoint_id = document["data"]["id"]
    other = await new_tenant(gateway_service)
    path = f"/api/v1/webhooks/{endpoint_id}"
    for method, body in (("GET", None), ("PATCH", {"is_active": False}), ("DELETE", None)):
        async with api_module.request(method, path, json=body, headers=other.auth) as response:
            assert response.status == 404, method
    async with api_module.get("/api/v1/webhooks", headers=other.auth) as response:
        assert (await response.json())["data"] == []
    async with api_module.get(path, headers=tenant.auth) as response:
        assert response.status == 200 and (await response.json())["data"]["is_active"] is True


async def test_event_types_list_the_catalog_with_examples(api_module, owner):
    tenant, _ = owner
    async with api_module.get("/api/v1/webhooks/event-types", headers=tenant.auth) as response:
        assert response.status == 200
        listed = (await response.json())["data"]
    assert [item["name"] for item in listed] == list(CATALOG)
    assert {"order.created", "payment.completed", "integration.sync.failed", "webhook.disabled"} <= set(CATALOG)
    assert all(item["description"] and isinstance(item["example"], dict) for item in listed)
    async with api_module.get("/api/v1/webhooks/event-types") as response:
        assert response.status == 401


@pytest.fixture
async def receiver():
    """A tenant's receiver on 127.0.0.1: verifies each message with the standardwebhooks verifier."""
    from aiohttp import web
    from standardwebhooks import Webhook

    state = {"secret": None, "received": [], "status": 200}

    async def hook(request: web.Request) -> web.Response:
        body = await request.read()
        state["received"].append((Webhook(state["secret"]).verify(body, dict(request.headers)), request.headers["webhook-id"]))
        return web.Response(status=state["status"], text="got it")

    app = web.Application()
    app.router.add_post("/hook", hook)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    yield f"http://127.0.0.1:{runner.addresses[0][1]}/hook", state
    await runner.cleanup()


async def test_the_test_ping_is_signed_and_its_attempt_returned(api_module, gateway_service, owner, receiver):
    tenant, integration_id = owner
    url, state = receiver
    status, document = await register(api_module, tenant, integration_id=integration_id, url=url, events=["order.created"])
    assert status == 201
    endpoint_id, state["secret"] = document["data"]["id"], document["data"]["secret"]

    async with api_module.post(f"/api/v1/webhooks/{endpoint_id}/test", headers=tenant.auth) as response:
        assert response.status == 200, await response.text()
        attempt = (await response.json())["data"]
    assert attempt["success"] is True and attempt["outcome"] == "success" and attempt["status_code"] == 200
    assert attempt["event_type"] == "webhook.test" and attempt["response_body"] == "got it" and attempt["error"] is None
    ((payload, webhook_id),) = state["received"]  # verified with the secret shown at registration
    assert webhook_id == attempt["message_id"] and payload["type"] == "webhook.test"
    assert payload["data"] == {"webhook_id": endpoint_id, "integration_id": integration_id}

    state["status"] = 503
    async with api_module.post(f"/api/v1/webhooks/{endpoint_id}/test", headers=tenant.auth) as response:
        attempt = (await response.json())["data"]
    assert (attempt["success"], attempt["outcome"], attempt["status_code"]) == (False, "http_error", 503)

    other = await new_tenant(gateway_service)
    async with api_module.post(f"/api/v1/webhooks/{endpoint_id}/test", headers=other.auth) as response:
        assert response.status == 404
    assert len(state["received"]) == 2
