"""Managing integrations end to end: POST/GET/PATCH/DELETE /api/v1/integrations[/{id}] through the
real gateway, broker, integrations service and Postgres, and the events they emit."""
from __future__ import annotations

import base64
import copy
import re

import pytest

from gateway.tenants import create_tenant
from posint_common.contracts import integrations as contract, topics
from posint_common.testing import Tenant, read_topic, unique


def bearer(tenant: Tenant) -> dict:
    return {"Authorization": f"Bearer {tenant.key}"}

DETAIL_KEYS = {"id", "name", "integration_type", "provider", "is_active", "last_sync_at", "config", "inbound_url",
               "created_at", "updated_at", "health"}
HEALTH_KEYS = {"last_sync_status", "last_sync_error", "last_inbound_order_at", "token_expires_at"}
LIST_KEYS = {"id", "name", "integration_type", "provider", "is_active", "last_sync_at"}
TIMESTAMP = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ")

# One valid body per provider; every secret value is unique, so a leak is found by searching for it.
BODIES = {
    "doordash": {"name": "DoorDash", "integration_type": "delivery", "provider": "doordash",
                 "config": {"store_id": "dd-store-1", "api_base_url": "http://127.0.0.1:9/doordash"},
                 "credentials": {"developer_id": "dev-SECRET-dd1", "key_id": "kid-SECRET-dd2", "signing_secret": "sig-SECRET-dd3"}},
    "ubereats": {"name": "Uber Eats", "integration_type": "delivery", "provider": "ubereats",
                 "config": {"store_id": "ue-1", "auto_accept": True, "prep_time_minutes": 25},
                 "credentials": {"client_id": "cid-SECRET-ue1", "client_secret": "cs-SECRET-ue2"}},
    "grubhub": {"name": "Grubhub", "integration_type": "delivery", "provider": "grubhub",
                "config": {"merchant_id": "gh-1"}, "credentials": {"client_id": "cid-SECRET-gh1", "secret_key": "sk-SECRET-gh2"}},
    "custom": {"name": "Our website", "integration_type": "delivery", "provider": "custom", "config": {}, "credentials": {}},
    "quickbooks": {"name": "QuickBooks", "integration_type": "accounting", "provider": "quickbooks",
                   "config": {"realm_id": "9130"},
                   "credentials": {"client_id": "cid-SECRET-qb1", "client_secret": "cs-SECRET-qb2", "refresh_token": "rt-SECRET-qb3"}},
    "xero": {"name": "Xero", "integration_type": "accounting", "provider": "xero", "config": {"xero_tenant_id": "org-1"},
             "credentials": {"client_id": "cid-SECRET-xe1", "client_secret": "cs-SECRET-xe2", "refresh_token": "rt-SECRET-xe3"}},
}


def body(template: str, **changes) -> dict:
    document = copy.deepcopy(BODIES[template])
    document.update(changes)
    return document


def secret_values(document: dict) -> list[str]:
    return list(document["credentials"].values())


@pytest.fixture
async def tenant(gateway_service, integrations_service) -> Tenant:
    """A fresh tenant per test: one live integration per provider and tenant."""
    return Tenant(*await create_tenant(gateway_service.pool, unique("manage")))


async def create(api, tenant: Tenant, document: dict) -> dict:
    async with api.post("/api/v1/integrations", json=document, headers=bearer(tenant)) as response:
        text = await response.text()
        assert response.status == 201, text
        assert response.headers["Location"] == f"/api/v1/integrations/{(await response.json())['data']['id']}"
        return await response.json()


async def everything_visible(api, tenant: Tenant, integration_id: int) -> str:
    """Every later response about the tenant's integrations, as text."""
    texts = []
    for path in ("/api/v1/integrations", f"/api/v1/integrations/{integration_id}"):
        async with api.get(path, headers=bearer(tenant)) as response:
            assert response.status == 200
            texts.append(await response.text())
    return "\n".join(texts)


async def test_create_answers_201_with_the_integration_and_its_inbound_secret_once(api, tenant):
    document = body("doordash")
    created = (await create(api, tenant, document))["data"]
    assert set(created) == DETAIL_KEYS | {"inbound_secret"}
    assert (created["name"], created["integration_type"], created["provider"], created["is_active"]) == (
        "DoorDash", "delivery", "doordash", True)
    assert created["config"] == {"store_id": "dd-store-1", "api_base_url": "http://127.0.0.1:9/doordash",
                                 "auto_accept": False, "prep_time_minutes": 15}  # defaults filled in
    assert created["inbound_url"] == f"/api/v1/integrations/{created['id']}/inbound"
    assert created["inbound_secret"].startswith("whsec_")
    assert len(base64.b64decode(created["inbound_secret"].removeprefix("whsec_"), validate=True)) == 32
    assert created["health"] == dict.fromkeys(HEALTH_KEYS) and created["last_sync_at"] is None
    assert TIMESTAMP.fullmatch(created["created_at"]) and TIMESTAMP.fullmatch(created["updated_at"])

    async with api.get(f"/api/v1/integrations/{created['id']}", headers=bearer(tenant)) as response:
        assert response.status == 200
        shown = (await response.json())["data"]
    assert shown == {key: value for key, value in created.items() if key != "inbound_secret"}
    # a command's reply travels through the outbox; it keeps the document's key order, as a query's does
    assert [key for key in created if key != "inbound_secret"] == list(shown)
    assert list(shown["config"]) == list(created["config"]) and list(shown["health"]) == list(created["health"])

    later = await everything_visible(api, tenant, created["id"])
    for secret in [*secret_values(document), created["inbound_secret"], created["inbound_secret"].removeprefix("whsec_")]:
        assert secret not in later


async def test_inbound_secrets_are_random(api, tenant):
    first = (await create(api, tenant, body("doordash")))["data"]["inbound_secret"]
    second = (await create(api, tenant, body("ubereats")))["data"]["inbound_secret"]
    assert first != second


@pytest.mark.parametrize("provider", sorted(BODIES))
async def test_every_provider_can_be_created_with_its_own_shape(api, tenant, provider):
    created = (await create(api, tenant, body(provider)))["data"]
    assert (created["provider"], created["integration_type"]) == (provider, BODIES[provider]["integration_type"])
    assert "credentials" not in created


async def test_the_list_keeps_the_contract_shape(api, tenant):
    await create(api, tenant, body("doordash"))
    await create(api, tenant, body("quickbooks"))
    async with api.get("/api/v1/integrations", headers=bearer(tenant)) as response:
        listed = await response.json()
    assert list(listed) == ["data"]
    assert [item["provider"] for item in listed["data"]] == ["doordash", "quickbooks"]
    for item in listed["data"]:
        assert set(item) == LIST_KEYS - {"last_sync_at"}  # no new fields; last_sync_at only once set


def without(document: dict, *keys: str) -> dict:
    return {key: value for key, value in document.items() if key not in keys}


INVALID_BODIES = {
    "provider-of-another-type": (body("quickbooks", integration_type="delivery"), {"provider"}),
    "delivery-provider-as-accounting": (body("doordash", integration_type="accounting"), {"provider"}),
    "unknown-provider": (body("doordash", provider="justeat"), {"provider"}),
    "unknown-type": (body("doordash", integration_type="pos"), {"integration_type"}),
    "unknown-config-key": (body("doordash", config={"store_id": "s", "storeid": "s"}), {"config.storeid"}),
    "config-of-another-provider": (body("doordash", config={"realm_id": "1"}), {"config.store_id", "config.realm_id"}),
    "missing-store-id": (body("ubereats", config={}), {"config.store_id"}),
    "relative-base-url": (body("doordash", config={"store_id": "s", "api_base_url": "/v1"}), {"config.api_base_url"}),
    "ftp-base-url": (body("doordash", config={"store_id": "s", "api_base_url": "ftp://127.0.0.1"}), {"config.api_base_url"}),
    "base-url-with-user-info": (body("doordash", config={"store_id": "s", "api_base_url": "https://u:p@127.0.0.1"}),
                                {"config.api_base_url"}),
    "prep-time-out-of-range": (body("ubereats", config={"store_id": "s", "prep_time_minutes": 0}), {"config.prep_time_minutes"}),
    "auto-accept-not-boolean": (body("ubereats", config={"store_id": "s", "auto_accept": "maybe"}), {"config.auto_accept"}),
    "auto-accept-as-string": (body("ubereats", config={"store_id": "s", "auto_accept": "true"}), {"config.auto_accept"}),
    "prep-time-as-string": (body("ubereats", config={"store_id": "s", "prep_time_minutes": "15"}), {"config.prep_time_minutes"}),
    "missing-credential": (body("quickbooks", credentials={"client_id": "a", "client_secret": "b"}), {"credentials.refresh_token"}),
    "unknown-credential": (body("custom", credentials={"password": "x"}), {"credentials.password"}),
    "empty-credential": (body("ubereats", credentials={"client_id": "", "client_secret": "b"}), {"credentials.client_id"}),
    "missing-name": (without(body("doordash"), "name"), {"name"}),
    "blank-name": (body("doordash", name="   "), {"name"}),
    "control-character-in-name": (body("doordash", name="a\u0000b"), {"name"}),
    "missing-config": (without(body("doordash"), "config"), {"config"}),
    "missing-credentials": (without(body("doordash"), "credentials"), {"credentials"}),
    "missing-everything": ({}, {"name", "integration_type", "provider", "config", "credentials"}),
    "unknown-top-level-key": (body("doordash", is_active=False), {"is_active"}),
}


@pytest.mark.parametrize("document, fields", INVALID_BODIES.values(), ids=INVALID_BODIES.keys())
async def test_an_invalid_body_is_422_naming_each_bad_field(api, tenant, document, fields):
    async with api.post("/api/v1/integrations", json=document, headers=bearer(tenant)) as response:
        assert response.status == 422
        assert response.content_type == "application/problem+json"
        text = await response.text()
        problem = await response.json()
    assert {error["field"] for error in problem["errors"]} == fields
    for secret in document.get("credentials", {}).values():
        assert len(secret) < 3 or secret not in text  # the input is never echoed


async def test_a_provider_mismatch_says_which_providers_fit(api, tenant):
    async with api.post("/api/v1/integrations", json=body("xero", integration_type="delivery"), headers=bearer(tenant)) as response:
        (error,) = (await response.json())["errors"]
    assert error["field"] == "provider" and "doordash, ubereats, grubhub, custom" in error["message"]


async def test_one_live_integration_per_provider(api, tenant):
    first = (await create(api, tenant, body("doordash")))["data"]
    async with api.post("/api/v1/integrations", json=body("doordash"), headers=bearer(tenant)) as response:
        assert response.status == 409
        assert str(first["id"]) in (await response.json())["detail"]
    async with api.delete(f"/api/v1/integrations/{first['id']}", headers=bearer(tenant)) as response:
        assert response.status == 204
    second = (await create(api, tenant, body("doordash")))["data"]
    assert second["id"] != first["id"]


async def test_patch_changes_what_it_names_and_merges_config(api, tenant):
    created = (await create(api, tenant, body("ubereats")))["data"]
    path = f"/api/v1/integrations/{created['id']}"
    patch = {"name": "Uber Eats (Main St)", "config": {"prep_time_minutes": 30, "auto_accept": None}}
    async with api.patch(path, json=patch, headers=bearer(tenant)) as response:
        assert response.status == 200, await response.text()
        updated = (await response.json())["data"]
    assert set(updated) == DETAIL_KEYS
    assert updated["name"] == "Uber Eats (Main St)" and updated["is_active"] is True
    assert updated["config"] == {**created["config"], "prep_time_minutes": 30, "auto_accept": False}  # null: the default
    async with api.patch(path, json={"is_active": False}, headers=bearer(tenant)) as response:
        assert (await response.json())["data"]["is_active"] is False
    async with api.get("/api/v1/integrations", headers=bearer(tenant)) as response:
        (listed,) = (await response.json())["data"]
    assert (listed["name"], listed["is_active"]) == ("Uber Eats (Main St)", False)


async def test_patch_replaces_credentials_without_showing_them(api, tenant):
    created = (await create(api, tenant, body("quickbooks")))["data"]
    fresh = {"client_id": "cid-SECRET-new1", "client_secret": "cs-SECRET-new2", "refresh_token": "rt-SECRET-new3"}
    async with api.patch(f"/api/v1/integrations/{created['id']}", json={"credentials": fresh}, headers=bearer(tenant)) as response:
        assert response.status == 200
        text = await response.text()
    later = text + await everything_visible(api, tenant, created["id"])
    assert "credentials" not in (await response.json())["data"]
    for secret in fresh.values():
        assert secret not in later


INVALID_PATCHES = {
    "empty": ({}, {"request body"}),
    "null-name": ({"name": None}, {"name"}),
    "unknown-key": ({"provider": "xero"}, {"provider"}),
    "is-active-not-boolean": ({"is_active": "yes"}, {"is_active"}),
    "unknown-config-key": ({"config": {"realm_id": "1"}}, {"config.realm_id"}),
    "bad-config-value": ({"config": {"api_base_url": "not a url", "prep_time_minutes": 999}},
                         {"config.api_base_url", "config.prep_time_minutes"}),
    "required-config-removed": ({"config": {"store_id": None}}, {"config.store_id"}),
    "incomplete-credentials": ({"credentials": {"client_id": "x"}}, {"credentials.client_secret"}),
    "unknown-credential": ({"credentials": {"client_id": "x", "client_secret": "y", "token": "z"}}, {"credentials.token"}),
    "config-and-credentials": ({"config": {"x": 1}, "credentials": {}}, {"config.x", "credentials.client_id", "credentials.client_secret"}),
}


@pytest.mark.parametrize("patch, fields", INVALID_PATCHES.values(), ids=INVALID_PATCHES.keys())
async def test_an_invalid_patch_is_422_and_changes_nothing(api, tenant, patch, fields):
    created = (await create(api, tenant, body("ubereats")))["data"]
    path = f"/api/v1/integrations/{created['id']}"
    async with api.patch(path, json=patch, headers=bearer(tenant)) as response:
        assert response.status == 422, await response.text()
        assert response.content_type == "application/problem+json"
        problem = await response.json()
    assert {error["field"] for error in problem["errors"]} == fields
    async with api.get(path, headers=bearer(tenant)) as response:
        assert (await response.json())["data"] == {key: value for key, value in created.items() if key != "inbound_secret"}


async def test_delete_deactivates_and_hides_but_keeps_the_row(api, tenant, integrations_service):
    created = (await create(api, tenant, body("grubhub")))["data"]
    kept = (await create(api, tenant, body("xero")))["data"]
    path = f"/api/v1/integrations/{created['id']}"
    async with api.delete(path, headers=bearer(tenant)) as response:
        assert response.status == 204
        assert await response.read() == b""
    for method, json in (("GET", None), ("PATCH", {"name": "back"}), ("DELETE", None)):
        async with api.request(method, path, json=json, headers=bearer(tenant)) as response:
            assert response.status == 404, method
            assert response.content_type == "application/problem+json"
    async with api.get("/api/v1/integrations", headers=bearer(tenant)) as response:
        assert [item["id"] for item in (await response.json())["data"]] == [kept["id"]]
    row = await integrations_service.pool.fetchrow(
        "SELECT is_active, deleted_at, credentials FROM integrations WHERE id = $1", created["id"])
    assert row["is_active"] is False and row["deleted_at"] is not None and row["credentials"] is not None


async def test_another_tenants_integration_is_404_and_untouched(api, tenant, gateway_service):
    other = Tenant(*await create_tenant(gateway_service.pool, unique("other")))
    theirs = (await create(api, other, body("doordash")))["data"]
    path = f"/api/v1/integrations/{theirs['id']}"
    for method, json in (("GET", None), ("PATCH", {"name": "mine now"}), ("PATCH", {"credentials": {}}), ("DELETE", None)):
        async with api.request(method, path, json=json, headers=bearer(tenant)) as response:
            assert response.status == 404, method
            problem = await response.json()
        assert problem["status"] == 404 and problem["title"] == "Not Found"
    async with api.get(path, headers=bearer(other)) as response:
        assert (await response.json())["data"] == {key: value for key, value in theirs.items() if key != "inbound_secret"}


@pytest.mark.parametrize("raw_id", ["abc", "1.5", "-1", "+1", "0x10", "9223372036854775808"])
async def test_a_path_id_that_is_not_a_bigint_is_422_naming_id(api, tenant, raw_id):
    for method in ("GET", "PATCH", "DELETE"):
        json = {"name": "x"} if method == "PATCH" else None
        async with api.request(method, f"/api/v1/integrations/{raw_id}", json=json, headers=bearer(tenant)) as response:
            assert response.status == 422, method
            assert [error["field"] for error in (await response.json())["errors"]] == ["id"]


@pytest.mark.parametrize("raw_id", ["0", "9223372036854775807"])
async def test_an_unknown_id_is_404(api, tenant, raw_id):
    async with api.get(f"/api/v1/integrations/{raw_id}", headers=bearer(tenant)) as response:
        assert response.status == 404


async def test_create_update_and_delete_emit_events_without_secrets(api, tenant, infra):
    document = body("ubereats")
    created = (await create(api, tenant, document))["data"]
    path = f"/api/v1/integrations/{created['id']}"
    async with api.patch(path, json={"config": {"prep_time_minutes": 40}, "credentials": {"client_id": "cid-SECRET-ev1",
                                                                                          "client_secret": "cs-SECRET-ev2"}},
                         headers=bearer(tenant)) as response:
        assert response.status == 200
    async with api.patch(path, json={"config": {"prep_time_minutes": 40}}, headers=bearer(tenant)) as response:
        assert response.status == 200  # changes nothing: no event
    async with api.delete(path, headers=bearer(tenant)) as response:
        assert response.status == 204

    ours = lambda envelope: envelope.subject == str(created["id"])  # noqa: E731
    events = await read_topic(infra.bootstrap_servers, topics.INTEGRATIONS_EVENTS, 3, match=ours)
    assert [event.type for event in events] == [
        contract.INTEGRATION_CREATED, contract.INTEGRATION_UPDATED, contract.INTEGRATION_DEACTIVATED]
    assert all(event.tenantid == tenant.id and event.source == "posint/integrations" for event in events)
    made = contract.IntegrationCreated.model_validate(events[0].data)
    assert (made.id, made.provider, made.config) == (created["id"], "ubereats", created["config"])
    changed = contract.IntegrationUpdated.model_validate(events[1].data)
    assert changed.changed == ["config", "credentials"] and changed.config["prep_time_minutes"] == 40
    gone = contract.IntegrationDeactivated.model_validate(events[2].data)
    assert (gone.id, gone.provider, gone.integration_type) == (created["id"], "ubereats", "delivery")
    raw = "\n".join(event.model_dump_json() for event in events)
    for secret in [*secret_values(document), "cid-SECRET-ev1", "cs-SECRET-ev2", created["inbound_secret"]]:
        assert secret not in raw
    assert "credentials\":" not in raw and "inbound_secret" not in raw
