"""Sync runs end to end: the real gateway, integrations and orders services, and the sandbox's fake
DoorDash over real HTTP on 127.0.0.1. A run fetches the platform's orders since the watermark and
hands each over like a pushed order (the orders service files them), syncing twice creates nothing
twice, one run per integration at a time, a failing platform fails the run (health shows it), and a
run whose worker died is finished as failed."""
from __future__ import annotations

import dataclasses
import uuid

import pytest

from gateway.tenants import create_tenant
from posint_common.contracts import integrations as contract, topics
from posint_common.testing import eventually, read_topic, unique
from sandbox.platforms import samples
from sandbox.platforms.demo import DEMO_CREDENTIALS, demo_config
from sandbox.platforms.faults import Fault
from sandbox.platforms.server import Sandbox

from .conftest import Tenant, bearer

API = "/api/v1"
LIST_PATH = "/marketplace/api/v1/stores/"


@pytest.fixture(scope="module")
async def sandbox():
    async with Sandbox() as running:
        yield running


@pytest.fixture
def doordash(sandbox):
    fake = sandbox["doordash"]
    fake.reset()
    return fake


@pytest.fixture
async def tenant(gateway_service, integrations_service, orders_service):
    """A fresh tenant per test: each may have its own DoorDash integration."""
    return Tenant(*await create_tenant(gateway_service.pool, unique("tenant-sync")))


async def post(api, tenant: Tenant, path: str, **kwargs):
    headers = {**bearer(tenant), "Idempotency-Key": uuid.uuid4().hex}
    async with api.post(API + path, headers=headers, **kwargs) as response:
        return response.status, await response.json()


async def get(api, tenant: Tenant, path: str):
    async with api.get(API + path, headers=bearer(tenant)) as response:
        return response.status, await response.json(), response.headers


async def connect_doordash(api, tenant: Tenant, sandbox: Sandbox) -> int:
    document = {"name": "DoorDash", "integration_type": "delivery", "provider": "doordash",
                "config": demo_config("doordash", sandbox.url), "credentials": DEMO_CREDENTIALS["doordash"]}
    status, body = await post(api, tenant, "/integrations", json=document)
    assert status == 201, body
    return body["data"]["id"]


async def finished(api, tenant: Tenant, run_id: int) -> dict:
    """The run once it is no longer running."""
    seen: dict = {}

    async def done() -> bool:
        status, body, _ = await get(api, tenant, f"/sync-runs/{run_id}")
        assert status == 200, body
        seen.update(body["data"])
        return body["data"]["status"] != "running"

    await eventually(done, 30, f"sync run {run_id} to finish")
    return seen


async def sync(api, tenant: Tenant, integration_id: int) -> dict:
    status, body = await post(api, tenant, f"/integrations/{integration_id}/sync")
    assert status == 200, body
    return body["data"]


async def test_a_sync_hands_the_platforms_orders_over(api, tenant, sandbox, doordash, integrations_service):
    integration_id = await connect_doordash(api, tenant, sandbox)
    listed = [doordash.add_order() for _ in range(3)]

    started = await sync(api, tenant, integration_id)
    assert set(started) == {"id", "integration_id", "status", "started_at"}  # the contract's shape, exactly
    assert (started["integration_id"], started["status"]) == (integration_id, "running")
    run = await finished(api, tenant, started["id"])
    assert run["status"] == "succeeded", run
    assert run["counts"] == {"fetched": 3, "created": 3, "updated": 0, "duplicates": 0, "failed": 0}
    assert run["error"] is None and run["finished_at"] >= run["started_at"]

    status, body, _ = await get(api, tenant, f"/integrations/{integration_id}")
    assert body["data"]["last_sync_at"] == run["finished_at"]
    assert body["data"]["health"]["last_sync_status"] == "succeeded"
    assert body["data"]["health"]["last_sync_error"] is None

    orders: list = []

    async def filed() -> bool:  # the orders service filed each from the order-received hand-over
        _, page, _ = await get(api, tenant, f"/external-orders?integration_id={integration_id}")
        orders[:] = page["data"]
        return len(orders) == 3

    await eventually(filed, 30, "the synced orders in GET /external-orders")
    assert {order["external_id"] for order in orders} == {doordash.order_id(order) for order in listed}

    events = await read_topic(integrations_service.settings.kafka_bootstrap_servers, topics.INTEGRATIONS_EVENTS, 2,
                              match=lambda e: e.subject == str(integration_id) and e.type.startswith("posint.integrations.sync-"))
    by_type = {e.type: e for e in events}
    assert by_type[contract.SYNC_STARTED].data["id"] == started["id"]
    completed = by_type[contract.SYNC_COMPLETED]
    assert completed.tenantid == tenant.id
    assert completed.data["completed_at"] == run["finished_at"] and completed.data["provider"] == "doordash"
    assert completed.data["counts"]["created"] == 3


async def test_syncing_twice_creates_nothing_twice(api, tenant, sandbox, doordash, integrations_service):
    integration_id = await connect_doordash(api, tenant, sandbox)
    kept = samples.sample_order("DD")
    doordash.add_order(kept)
    doordash.add_order()
    first = await finished(api, tenant, (await sync(api, tenant, integration_id))["id"])
    assert first["counts"]["created"] == 2

    doordash.duplicate = True  # the platform lists every order twice
    async with integrations_service.pool.acquire() as conn:  # and from the start: forget the watermark
        await conn.execute("UPDATE integrations SET sync_watermark = NULL WHERE id = $1", integration_id)
    second = await finished(api, tenant, (await sync(api, tenant, integration_id))["id"])
    assert second["status"] == "succeeded"
    assert second["counts"]["created"] == 0 and second["counts"]["duplicates"] == 2, second

    doordash.duplicate = False
    doordash.add_order()  # one new order, and one changed at the platform
    doordash.add_order(dataclasses.replace(kept, notes="no onions, please"))
    third = await finished(api, tenant, (await sync(api, tenant, integration_id))["id"])
    assert third["counts"]["created"] == 1 and third["counts"]["updated"] == 1, third

    async with integrations_service.pool.acquire() as conn:
        stored = await conn.fetchval("SELECT count(*) FROM inbound_orders WHERE integration_id = $1", integration_id)
    assert stored == 3


async def test_one_run_at_a_time_and_the_runs_newest_first(api, tenant, sandbox, doordash):
    integration_id = await connect_doordash(api, tenant, sandbox)
    doordash.add_order()
    doordash.faults.add(Fault("timeout", path=LIST_PATH, delay_s=2.5))  # too slow once: the client tries again
    first = await sync(api, tenant, integration_id)
    again = await sync(api, tenant, integration_id)
    assert again == first  # the one already running
    assert (await finished(api, tenant, first["id"]))["status"] == "succeeded"
    later = await sync(api, tenant, integration_id)
    assert later["id"] != first["id"]
    await finished(api, tenant, later["id"])

    status, body, headers = await get(api, tenant, f"/integrations/{integration_id}/sync-runs?limit=1")
    assert status == 200 and [run["id"] for run in body["data"]] == [later["id"]]
    assert "rel=\"next\"" in headers["Link"]
    status, body, headers = await get(api, tenant, f"/integrations/{integration_id}/sync-runs?limit=1&after={later['id']}")
    assert [run["id"] for run in body["data"]] == [first["id"]]


async def test_a_failing_platform_fails_the_run(api, tenant, sandbox, doordash, integrations_service):
    integration_id = await connect_doordash(api, tenant, sandbox)
    doordash.faults.add(Fault("500", times=20, path=LIST_PATH))
    run = await finished(api, tenant, (await sync(api, tenant, integration_id))["id"])
    assert run["status"] == "failed" and "500" in run["error"], run
    _, body, _ = await get(api, tenant, f"/integrations/{integration_id}")
    assert body["data"]["health"]["last_sync_status"] == "failed"
    assert body["data"]["health"]["last_sync_error"] == run["error"]
    assert body["data"]["last_sync_at"] is None  # set only when a run succeeds
    [event] = await read_topic(integrations_service.settings.kafka_bootstrap_servers, topics.INTEGRATIONS_EVENTS, 1,
                               match=lambda e: e.subject == str(integration_id) and e.type == contract.SYNC_FAILED)
    assert event.data["error"] == run["error"] and event.data["failed_at"] == run["finished_at"]

    doordash.faults.clear()  # the platform is back: the next run succeeds and clears the error
    run = await finished(api, tenant, (await sync(api, tenant, integration_id))["id"])
    assert run["status"] == "succeeded"
    _, body, _ = await get(api, tenant, f"/integrations/{integration_id}")
    assert body["data"]["health"] | {"last_inbound_order_at": None, "token_expires_at": None} == {
        "last_sync_status": "succeeded", "last_sync_error": None, "last_inbound_order_at": None, "token_expires_at": None}


async def test_a_run_whose_worker_died_is_finished_as_failed(api, tenant, sandbox, doordash, integrations_service):
    """The worker's Postgres session ends mid-run, as when its process is killed: the run's lock is
    released with it, and the sweep finishes the run as failed instead of leaving it running."""
    integration_id = await connect_doordash(api, tenant, sandbox)
    doordash.faults.add(Fault("timeout", path=LIST_PATH, delay_s=3))
    started = await sync(api, tenant, integration_id)
    pool = integrations_service.pool
    holder: list = []

    async def locked() -> bool:  # the worker took the run and holds its lock
        holder[:] = await pool.fetch(
            "SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND granted"
            " AND ((classid::bigint << 32) | objid::bigint) = hashtextextended($1, 0)",
            f"integrations.sync_run:{started['id']}")
        return bool(holder)

    await eventually(locked, 10, "the sync worker to take the run")
    await pool.execute("SELECT pg_terminate_backend($1)", holder[0]["pid"])
    run = await finished(api, tenant, started["id"])
    assert run["status"] == "failed" and run["error"].startswith("interrupted"), run
    _, body, _ = await get(api, tenant, f"/integrations/{integration_id}")
    assert body["data"]["health"]["last_sync_status"] == "failed"


async def test_an_inactive_integration_does_not_sync(api, tenant, sandbox):
    integration_id = await connect_doordash(api, tenant, sandbox)
    async with api.patch(f"{API}/integrations/{integration_id}", json={"is_active": False}, headers=bearer(tenant)) as response:
        assert response.status == 200
    status, body = await post(api, tenant, f"/integrations/{integration_id}/sync")
    assert (status, body["status"]) == (409, 409)
    status, body = await post(api, tenant, "/integrations/987654321/sync")
    assert status == 404
    status, body, _ = await get(api, tenant, "/integrations/987654321/sync-runs")
    assert status == 404
    status, body, _ = await get(api, tenant, "/sync-runs/987654321")
    assert status == 404
    status, body, _ = await get(api, tenant, "/sync-runs/abc")
    assert status == 422 and body["errors"][0]["field"] == "id"


async def test_a_run_left_running_by_a_stopped_service_is_failed_at_start(api, tenant, sandbox, integrations_service):
    """What a restart finds: a run still ``running``, taken by a worker that no longer exists (no
    session holds its lock). The worker's first round (at start, and every round after) fails it."""
    integration_id = await connect_doordash(api, tenant, sandbox)
    async with integrations_service.pool.acquire() as conn:
        run_id = await conn.fetchval(
            "INSERT INTO sync_runs (tenant_id, integration_id, claimed_by) VALUES ($1, $2, 'a-worker-that-died')"
            " RETURNING id", tenant.id, integration_id)
    run = await finished(api, tenant, run_id)
    assert run["status"] == "failed" and run["error"].startswith("interrupted"), run
    started = await sync(api, tenant, integration_id)  # and the integration syncs again
    assert started["id"] != run_id
