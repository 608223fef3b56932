"""Generated from the endpoint table: every keyed route with an ``{id}``, called with another
tenant's key on the owner's resource, answers 404 problem+json (never 200, 403 or the owner's data),
so a new endpoint is covered the day it is added.

The owner's resource is made through the API by MAKERS, keyed by its collection (the path before
``/{id}``); a route whose collection has no maker fails here, saying so. A body, where the route takes
one, is one the endpoint's own model accepts, generated from openapi.json by schemathesis.
Both tenants are this module's own, so the shared fixtures' tenants keep their contents."""
from __future__ import annotations

import json
import uuid
from datetime import datetime, timezone
from typing import Awaitable, Callable

import hypothesis
import pytest
import schemathesis
from pydantic import ValidationError
from standardwebhooks import Webhook

from gateway.http.endpoints import API_PREFIX, ENDPOINTS, Endpoint
from gateway.http.openapi import build_document
from gateway.tenants import create_tenant
from posint_common.testing import eventually, unique

from .conftest import Tenant, bearer

ROUTES = [endpoint for endpoint in ENDPOINTS if endpoint.auth and "{id}" in endpoint.path]


def collection_of(endpoint: Endpoint) -> str:
    return endpoint.path.split("/{id}")[0]


def valid_body(endpoint: Endpoint) -> dict | None:
    """A body the endpoint's own model takes (its JSON schema alone may accept more, e.g. an empty PATCH)."""
    if endpoint.body is None:
        return None
    operation = schemathesis.openapi.from_dict(build_document())[API_PREFIX + endpoint.path][endpoint.method]

    def accepted(case) -> bool:
        try:
            endpoint.body.model_validate(case.body)
        except ValidationError:
            return False
        return True

    settings = hypothesis.settings(database=None, max_examples=500, deadline=None, derandomize=True,
                                   phases=[hypothesis.Phase.generate])  # the first one found: shrinking takes far longer
    return hypothesis.find(operation.as_strategy(), accepted, settings=settings).body


async def call(api, tenant: Tenant, method: str, path: str, **kwargs) -> dict:
    headers = {**bearer(tenant), "Idempotency-Key": uuid.uuid4().hex} if method == "POST" else bearer(tenant)
    async with api.request(method, API_PREFIX + path, headers=headers, **kwargs) as response:
        assert response.status < 300, f"{method} {path}: {response.status} {await response.text()}"
        return await response.json()


async def make_integration(api, owner: Tenant, made: dict) -> int:
    document = {"name": "isolation", "integration_type": "delivery", "provider": "custom", "config": {}, "credentials": {}}
    made["custom"] = (await call(api, owner, "POST", "/integrations", json=document))["data"]
    return made["custom"]["id"]


async def make_webhook(api, owner: Tenant, made: dict) -> int:
    event = (await call(api, owner, "GET", "/webhooks/event-types"))["data"][0]["name"]
    document = {"integration_id": await owned_id(api, owner, made, "/integrations"), "url": "http://127.0.0.1:9/isolation", "events": [event]}
    return (await call(api, owner, "POST", "/webhooks", json=document))["data"]["id"]


async def make_external_order(api, owner: Tenant, made: dict) -> int:
    """A signed push to a custom integration; the orders service files it from the order-received event."""
    await owned_id(api, owner, made, "/integrations")
    integration = made["custom"]
    body = json.dumps({"external_id": f"iso-{uuid.uuid4().hex[:8]}", "placed_at": "2026-01-04T18:00:00Z",
                       "customer": {"name": "Ada"}, "fulfillment": "pickup",
                       "items": [{"external_id": "tea", "name": "Tea", "quantity": 1, "unit_price": "2.00"}],
                       "subtotal": "2.00", "tax": "0.00", "total": "2.00", "currency": "USD"})
    msg_id, at = f"msg_{uuid.uuid4().hex}", datetime.now(timezone.utc)
    headers = {"Content-Type": "application/json", "webhook-id": msg_id, "webhook-timestamp": str(int(at.timestamp())),
               "webhook-signature": Webhook(integration["inbound_secret"]).sign(msg_id, at, body)}
    async with api.post(f"{API_PREFIX}/integrations/{integration['id']}/inbound", data=body, headers=headers) as response:
        assert response.status == 202, await response.text()
    listed: list = []

    async def filed() -> bool:
        listed[:] = (await call(api, owner, "GET", "/external-orders"))["data"]
        return bool(listed)

    await eventually(filed, 30, "the pushed order in GET /external-orders")
    return listed[0]["id"]


async def make_sync_run(api, owner: Tenant, made: dict) -> int:
    """A sync of the owner's custom integration (push only: the run fails at once, and exists)."""
    integration_id = await owned_id(api, owner, made, "/integrations")
    return (await call(api, owner, "POST", f"/integrations/{integration_id}/sync"))["data"]["id"]


MAKERS: dict[str, Callable[..., Awaitable[int]]] = {
    "/integrations": make_integration,
    "/webhooks": make_webhook,
    "/external-orders": make_external_order,
    "/sync-runs": make_sync_run,
}


@pytest.fixture(scope="module")
async def owner_and_other(gateway_service, integrations_service, orders_service, webhooks_service):
    return [Tenant(*await create_tenant(gateway_service.pool, unique(f"tenant-{label}"))) for label in ("owner", "other")]


@pytest.fixture(scope="module")
def made() -> dict:
    """The owner's resources by collection, each made once (a tenant has one custom integration)."""
    return {}


async def owned_id(api, owner: Tenant, made: dict, collection: str) -> int:
    if collection not in made:
        make = MAKERS.get(collection)
        if make is None:
            pytest.fail(f"routes under {collection}/{{id}} are not tried: add a maker for {collection} to MAKERS")
        made[collection] = await make(api, owner, made)
    return made[collection]


def test_the_table_has_routes_to_try():
    assert ROUTES, "no keyed route with an {id}: this test would try nothing"


@pytest.mark.parametrize("endpoint", ROUTES, ids=lambda endpoint: f"{endpoint.method} {endpoint.path}")
async def test_another_tenants_id_is_not_found(api, owner_and_other, made, endpoint: Endpoint):
    owner, other = owner_and_other
    path = API_PREFIX + endpoint.path.replace("{id}", str(await owned_id(api, owner, made, collection_of(endpoint))))
    path = path.replace("{message_id}", "msg_isolation")  # any well-formed id: the endpoint is the owner's
    headers = {**bearer(other), "Idempotency-Key": uuid.uuid4().hex}
    async with api.request(endpoint.method, path, json=valid_body(endpoint), headers=headers) as response:
        assert (response.status, response.content_type) == (404, "application/problem+json"), await response.text()
    if endpoint.method == "GET":  # the id is the owner's, and there
        async with api.get(path, headers=bearer(owner)) as response:
            assert response.status == 200
