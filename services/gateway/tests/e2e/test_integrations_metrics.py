"""The integrations service's metrics, end to end: sync runs, the orders they hand over, every HTTP
attempt at a provider (429s and 5xx included, retries counted), signed inbound pushes and platform
pushes, each counter moved by exactly what the flow did. Real gateway, integrations and orders
services, the sandbox's fake platforms over real HTTP on 127.0.0.1; the counters are read from the
process's Prometheus registry (the services run in-process) and from the service's /metrics."""
from __future__ import annotations

import aiohttp
import pytest
from prometheus_client import REGISTRY

from gateway.tenants import create_tenant
from posint_common.contracts import orders
from posint_common.testing import eventually, unique
from sandbox.platforms.faults import Fault
from sandbox.platforms.server import Sandbox

from .conftest import Tenant, bearer
from .test_inbound_orders import create as create_inbound, encode, order as inbound_order, other_secret, push, signed
from .test_sync_runs import LIST_PATH, connect_doordash, finished, sync
from .test_sync_runs_pushes import connect, order as pushed_order, publish, producer  # noqa: F401 - fixture

API = "/api/v1"


@pytest.fixture(scope="module")
async def sandbox():
    async with Sandbox() as running:
        yield running


@pytest.fixture
async def tenant(gateway_service, integrations_service, orders_service):
    return Tenant(*await create_tenant(gateway_service.pool, unique("tenant-metrics")))


def current(series: tuple[str, dict[str, str]]) -> float:
    name, labels = series
    return REGISTRY.get_sample_value(name, labels) or 0.0


class Counts:
    """The samples named, now; ``moved()`` says by how much each grew since."""

    def __init__(self, *series: tuple[str, dict[str, str]]) -> None:
        self.series = series
        self.before = [current(one) for one in series]

    def moved(self) -> list[float]:
        return [current(one) - before for one, before in zip(self.series, self.before)]


def requests(operation: str, outcome: str, provider: str = "doordash") -> tuple[str, dict[str, str]]:
    return "posint_provider_requests_total", {"provider": provider, "operation": operation, "outcome": outcome}


def runs(outcome: str, provider: str = "doordash") -> tuple[str, dict[str, str]]:
    return "posint_sync_runs_total", {"provider": provider, "outcome": outcome}


async def test_a_sync_counts_its_run_its_orders_and_each_attempt_429s_included(api, tenant, sandbox,
                                                                              integrations_service):
    doordash = sandbox["doordash"]
    doordash.reset()
    integration_id = await connect_doordash(api, tenant, sandbox)
    doordash.add_order()
    doordash.add_order()
    # The platform is busy once (429, Retry-After 0.05 s): the client waits and asks again.
    doordash.faults.add(Fault("429", times=1, path=LIST_PATH, retry_after=0.05))
    latency = ("posint_provider_request_seconds_count", {"provider": "doordash", "operation": "fetch_orders"})
    counts = Counts(runs("succeeded"), runs("failed"),
                    ("posint_sync_orders_total", {"provider": "doordash", "result": "created"}),
                    ("posint_sync_orders_total", {"provider": "doordash", "result": "duplicate"}),
                    requests("fetch_orders", "http_429"), requests("fetch_orders", "success"), latency)

    run = await finished(api, tenant, (await sync(api, tenant, integration_id))["id"])
    assert run["status"] == "succeeded" and run["counts"]["created"] == 2, run
    assert counts.moved() == [1, 0, 2, 0, 1, 1, 2]  # one page: a 429, then its answer; both timed

    # Listed again from the start: both are duplicates now.
    counts = Counts(("posint_sync_orders_total", {"provider": "doordash", "result": "duplicate"}),
                    ("posint_sync_orders_total", {"provider": "doordash", "result": "created"}))
    async with integrations_service.pool.acquire() as conn:
        await conn.execute("UPDATE integrations SET sync_watermark = NULL WHERE id = $1", integration_id)
    run = await finished(api, tenant, (await sync(api, tenant, integration_id))["id"])
    assert run["counts"]["duplicates"] == 2, run
    assert counts.moved() == [2, 0]


async def test_a_failing_platform_counts_a_failed_run_and_every_5xx(api, tenant, sandbox, integrations_service):
    doordash = sandbox["doordash"]
    doordash.reset()
    integration_id = await connect_doordash(api, tenant, sandbox)
    doordash.faults.add(Fault("500", times=20, path=LIST_PATH))
    counts = Counts(runs("succeeded"), runs("failed"), requests("fetch_orders", "http_5xx"),
                    requests("fetch_orders", "success"))
    run = await finished(api, tenant, (await sync(api, tenant, integration_id))["id"])
    assert run["status"] == "failed", run
    attempts = integrations_service.settings.client_options.attempts
    assert counts.moved() == [0, 1, attempts, 0]  # every try of the call counted, the run once


async def test_a_run_cut_off_by_a_crash_is_counted_failed_once(api, tenant, sandbox, integrations_service):
    integration_id = await connect_doordash(api, tenant, sandbox)
    counts = Counts(runs("succeeded"), runs("failed"))
    async with integrations_service.pool.acquire() as conn:
        run_id = await conn.fetchval(
            "INSERT INTO sync_runs (tenant_id, integration_id, claimed_by) VALUES ($1, $2, 'a-worker-that-died')"
            " RETURNING id", tenant.id, integration_id)
    run = await finished(api, tenant, run_id)
    assert run["status"] == "failed" and run["error"].startswith("interrupted"), run
    await integrations_service.sync_worker.sweep()  # a later sweep finds nothing more to count
    assert counts.moved() == [0, 1]


async def test_inbound_pushes_are_counted_by_outcome(api, tenant, gateway_service, integrations_service):
    integration = await create_inbound(api, tenant, "custom")
    integration_id, secret = integration["id"], integration["inbound_secret"]
    outcomes = ("accepted", "duplicate", "updated", "unauthorized", "rejected", "inactive")
    counts = Counts(*(("posint_inbound_requests_total", {"provider": "custom", "outcome": outcome}) for outcome in outcomes))

    body = encode(inbound_order("metrics-1"))
    headers = signed(secret, body)
    assert (await push(api, integration_id, body, headers))[0] == 202
    assert (await push(api, integration_id, body, headers))[0] == 200  # redelivered: duplicate
    changed = encode(inbound_order("metrics-1", notes="no onions"))
    status, answer = await push(api, integration_id, changed, signed(secret, changed))
    assert (status, answer["data"]["status"]) == (200, "updated")
    assert (await push(api, integration_id, body, signed(other_secret(), body)))[0] == 401
    bad = b'{"external_id": "metrics-2"}'
    assert (await push(api, integration_id, bad, signed(secret, bad)))[0] == 400
    async with api.patch(f"{API}/integrations/{integration_id}", json={"is_active": False}, headers=bearer(tenant)) as response:
        assert response.status == 200
    other = encode(inbound_order("metrics-3"))
    assert (await push(api, integration_id, other, signed(secret, other)))[0] == 409
    assert counts.moved() == [1, 1, 1, 1, 1, 1]

    # An unknown id is refused like a bad signature, with no provider to name.
    unknown = Counts(("posint_inbound_requests_total", {"provider": "unknown", "outcome": "unauthorized"}))
    assert (await push(api, 987654321, body, signed(secret, body)))[0] == 401
    assert unknown.moved() == [1]


async def test_platform_pushes_are_counted_by_outcome(api, tenant, sandbox, producer):  # noqa: F811
    """On Grubhub, which no other test sends status updates to (exact counts, whatever ran before)."""
    grubhub = sandbox["grubhub"]
    integration_id = await connect(api, tenant, sandbox, "grubhub")

    def pushes(outcome: str) -> tuple[str, dict[str, str]]:
        return "posint_platform_pushes_total", {"provider": "grubhub", "kind": "status", "outcome": outcome}

    counts = Counts(pushes("delivered"), pushes("retrying"), pushes("gave_up"),
                    requests("push_status", "http_5xx", "grubhub"), requests("push_status", "success", "grubhub"))
    # Busy for the first call's two tries and the second call's first: the second call gets through.
    external_id = unique("GH")
    grubhub.faults.add(Fault("500", times=3, path=f"/orders/{external_id}"))
    data = {"integration_id": integration_id, "order": pushed_order(integration_id, external_id, 9_100_001)}
    await publish(producer, tenant, orders.ORDER_ACCEPTED, {**data, "prep_time_minutes": 20,
                                                              "accepted_at": "2026-01-04T18:01:00Z"})
    await eventually(lambda: current(pushes("delivered")) - counts.before[0] >= 1, 30, "the status delivered")
    assert counts.moved() == [1, 1, 0, 3, 1]

    # An answer the client cannot understand: given up at once, not retried.
    external_id = unique("GH")
    grubhub.faults.add(Fault("malformed", path=f"/orders/{external_id}"))
    counts = Counts(pushes("delivered"), pushes("retrying"), pushes("gave_up"))
    data = {"integration_id": integration_id, "order": pushed_order(integration_id, external_id, 9_100_002)}
    await publish(producer, tenant, orders.ORDER_READY, data)
    await eventually(lambda: current(pushes("gave_up")) - counts.before[2] >= 1, 30, "the status given up")
    assert counts.moved() == [0, 0, 1]


async def test_the_series_dashboards_and_alerts_need_are_served_before_first_use(integrations_service):
    """A counter that first appears at 1 shows no increase: the series alerts count on start at 0."""
    url = f"http://127.0.0.1:{integrations_service.ports['health']}/metrics"
    async with aiohttp.ClientSession() as session, session.get(url) as response:
        assert response.status == 200
        text = await response.text()
    for line in ('posint_sync_runs_total{outcome="failed",provider="xero"}',
                 'posint_platform_pushes_total{kind="sale",outcome="gave_up",provider="quickbooks"}',
                 'posint_platform_pushes_total{kind="status",outcome="gave_up",provider="grubhub"}',
                 'posint_inbound_requests_total{outcome="unauthorized",provider="ubereats"}',
                 "# TYPE posint_provider_requests_total counter",
                 "# TYPE posint_provider_request_seconds histogram"):
        assert line in text, line
