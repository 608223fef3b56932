"""An integration's secrets: sealed at rest (AES-GCM bound to tenant, integration and purpose),
opened by every key of the ring, never in a log line of the services; and the service refuses to
start without a key ring that opens what is stored."""
from __future__ import annotations

import asyncio
import base64
import json
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import NamedTuple

import aiohttp
import asyncpg
from aiokafka import AIOKafkaProducer
import pytest

from gateway.tenants import create_tenant
from integrations.adapters.repository import IntegrationRepository
from integrations.adapters.vault import KeyRing, KeyRingError, Undecryptable, associated_data, new_key_entry
from integrations.bootstrap import bootstrap as integrations_bootstrap
from integrations.config import IntegrationsSettings
from integrations.keys import reseal
from integrations.service_layer.secrets import Secrets
from posint_common import db
from posint_common.contracts import integrations as contract, topics
from posint_common.envelope import Envelope
from posint_common.devstack.broker import EmbeddedBroker
from posint_common.kafka import ensure_topics
from posint_common.testing import Tenant, eventually, unique

CREDENTIALS = {"client_id": "cid-SECRET-at-rest-1", "client_secret": "cs-SECRET-at-rest-2", "refresh_token": "rt-SECRET-at-rest-3"}
BODY = {"name": "QuickBooks", "integration_type": "accounting", "provider": "quickbooks", "config": {"realm_id": "42"},
        "credentials": CREDENTIALS}


def bearer(tenant: Tenant) -> dict:
    return {"Authorization": f"Bearer {tenant.key}"}


@pytest.fixture
async def created(api, gateway_service, integrations_service):
    tenant = Tenant(*await create_tenant(gateway_service.pool, unique("secrets")))
    async with api.post("/api/v1/integrations", json=BODY, headers=bearer(tenant)) as response:
        assert response.status == 201
        data = (await response.json())["data"]
    async with integrations_service.pool.acquire() as conn:
        integration = await IntegrationRepository(conn, tenant.id).get(data["id"])
    return tenant, data, integration


async def test_secrets_at_rest_are_ciphertext_that_opens_only_with_their_associated_data(created, integrations_service):
    tenant, data, integration = created
    row = await integrations_service.pool.fetchrow(
        "SELECT credentials, credentials_key_id, inbound_secret, inbound_secret_key_id, row_to_json(i)::text AS everything"
        " FROM integrations i WHERE id = $1", data["id"])
    for secret in [*CREDENTIALS.values(), data["inbound_secret"], data["inbound_secret"].removeprefix("whsec_")]:
        assert secret.encode() not in bytes(row["credentials"]) + bytes(row["inbound_secret"])
        assert secret not in row["everything"]
    assert row["credentials_key_id"] == row["inbound_secret_key_id"] == "test"

    secrets = Secrets(integrations_service.settings.key_ring)
    assert secrets.credentials(integration) == CREDENTIALS
    assert secrets.inbound_secret(integration) == data["inbound_secret"]
    keys = integrations_service.settings.key_ring
    for tenant_id, integration_id, purpose in ((tenant.id + "x", data["id"], "credentials"),
                                               (tenant.id, data["id"] + 1, "credentials"),
                                               (tenant.id, data["id"], "inbound_secret")):
        with pytest.raises(Undecryptable):
            keys.open(integration.credentials, associated_data(tenant_id, integration_id, purpose))
    with pytest.raises(Undecryptable):  # another key with the same id
        KeyRing.parse(new_key_entry("test")).open(integration.credentials, associated_data(tenant.id, data["id"], "credentials"))


async def test_a_new_key_put_first_still_opens_what_the_old_one_sealed_and_reseal_moves_it(created, integrations_service):
    _tenant, data, integration = created
    old = integrations_service.settings.key_ring
    rotated = KeyRing.parse(f"{new_key_entry('next')},{integrations_service.settings.integrations_encryption_keys.get_secret_value()}")
    assert rotated.primary == "next"
    assert Secrets(rotated).credentials(integration) == CREDENTIALS  # sealed with 'test', opened by the rotated ring
    async with integrations_service.pool.acquire() as conn:
        transaction = conn.transaction()  # rolled back: the session's service keeps its own key
        await transaction.start()
        try:
            assert await reseal(conn, rotated) >= 2
            moved = await IntegrationRepository(conn, integration.tenant_id).get(data["id"])
            assert moved.credentials.key_id == moved.inbound_secret.key_id == "next"
            assert Secrets(rotated).credentials(moved) == CREDENTIALS
            assert Secrets(rotated).inbound_secret(moved) == data["inbound_secret"]
            with pytest.raises(Undecryptable):
                Secrets(old).credentials(moved)
            assert await reseal(conn, rotated) == 0
        finally:
            await transaction.rollback()


async def test_the_service_refuses_to_start_without_a_key_that_stored_secrets_need(created, infra):
    settings = infra.settings(IntegrationsSettings, integrations_encryption_keys=new_key_entry("other"))
    with pytest.raises(KeyRingError, match="INTEGRATIONS_ENCRYPTION_KEYS lacks key id 'test'"):
        await integrations_bootstrap(settings)


ENV = {"DATABASE_URL": "postgresql://127.0.0.1:1/none", "KAFKA_BOOTSTRAP_SERVERS": "127.0.0.1:1"}
SHORT_KEY = base64.b64encode(b"sixteen-byte-key").decode()


@pytest.mark.parametrize("setting", [None, "", f"k1:{SHORT_KEY}", "k1", f"k1:{new_key_entry('x').split(':')[1]},k1:{SHORT_KEY}"],
                         ids=["missing", "empty", "short-key", "no-key", "repeated-id"])
def test_a_missing_or_bad_key_setting_stops_the_process_naming_the_variable(setting):
    env = {k: v for k, v in os.environ.items() if k != "INTEGRATIONS_ENCRYPTION_KEYS"} | ENV
    if setting is not None:
        env["INTEGRATIONS_ENCRYPTION_KEYS"] = setting
    result = subprocess.run([sys.executable, "-m", "integrations"], env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode == 2
    assert "INTEGRATIONS_ENCRYPTION_KEYS" in result.stderr
    assert SHORT_KEY not in result.stderr + result.stdout


# --- The services' own logs ---------------------------------------------------------------------

class Process(NamedTuple):
    process: subprocess.Popen
    log: Path
    ports: dict


async def spawn(module: str, env: dict, log: Path) -> Process:
    with log.open("wb") as out:
        process = subprocess.Popen([sys.executable, "-m", module], stdout=out, stderr=subprocess.STDOUT,
                                   env={**os.environ, **env, "PYTHONUNBUFFERED": "1"})
    ports: dict = {}

    def started() -> bool:
        assert process.poll() is None, log.read_text()
        for line in log.read_text().splitlines():
            if '"service_started"' in line:
                ports.update(json.loads(line)["ports"])
        return bool(ports)

    await eventually(started, 90, f"{module} to start")
    return Process(process, log, ports)


async def stop(process: subprocess.Popen) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        await asyncio.get_running_loop().run_in_executor(None, process.wait, 30)


@pytest.fixture(scope="module")
async def logged_stack(infra, tmp_path_factory):
    """Gateway and integrations as processes logging at DEBUG, on their own broker and database
    (so the session's in-process services answer none of their messages)."""
    where = tmp_path_factory.mktemp("secret-logs")
    database = unique("logs").replace("-", "_")
    admin = await asyncpg.connect(infra.database_url)
    await admin.execute(f"CREATE DATABASE {database}")
    await admin.close()
    dsn = infra.database_url.rsplit("/", 1)[0] + "/" + database
    broker = EmbeddedBroker(where / "tansu.log")
    bootstrap_servers = broker.start()
    await ensure_topics(bootstrap_servers, topics.ALL)
    env = {"DATABASE_URL": dsn, "KAFKA_BOOTSTRAP_SERVERS": bootstrap_servers, "HEALTH_PORT": "0", "GATEWAY_PORT": "0",
           "LOG_LEVEL": "DEBUG", "INTEGRATIONS_ENCRYPTION_KEYS": new_key_entry("logs")}
    running = []
    try:
        running.append(await spawn("integrations", env, where / "integrations.log"))
        running.append(await spawn("gateway", env, where / "gateway.log"))
        pool = await db.create_pool(dsn, "gateway", max_size=1)
        try:
            tenant = Tenant(*await create_tenant(pool, unique("logs")))
        finally:
            await pool.close()
        yield running, tenant, bootstrap_servers
    finally:
        for process in reversed(running):
            await stop(process.process)
        broker.stop()


async def test_no_secret_reaches_a_log_line(logged_stack):
    (integrations, gateway), tenant, bootstrap_servers = logged_stack
    seen: list[str] = list(CREDENTIALS.values())
    base = f"http://127.0.0.1:{gateway.ports['http']}"
    async with aiohttp.ClientSession(base_url=base, timeout=aiohttp.ClientTimeout(total=30)) as api:
        async with api.post("/api/v1/integrations", json=BODY, headers=bearer(tenant)) as response:
            assert response.status == 201, await response.text()
            data = (await response.json())["data"]
        seen += [data["inbound_secret"], data["inbound_secret"].removeprefix("whsec_")]
        path = f"/api/v1/integrations/{data['id']}"
        refused = {**BODY, "credentials": {**CREDENTIALS, "unknown": "xx-SECRET-refused-by-gateway"}}
        async with api.post("/api/v1/integrations", json=refused, headers=bearer(tenant)) as response:
            assert response.status == 422
        seen.append("xx-SECRET-refused-by-gateway")
        refused_by_service = {"credentials": {"client_id": "cid-SECRET-refused-by-service", "client_secret": "cs-SECRET-x"}}
        async with api.patch(path, json=refused_by_service, headers=bearer(tenant)) as response:
            assert response.status == 422  # checked against the provider by the integrations service
        seen += ["cid-SECRET-refused-by-service", "cs-SECRET-x"]
        fresh = {"client_id": "cid-SECRET-patched-1", "client_secret": "cs-SECRET-patched-2", "refresh_token": "rt-SECRET-patched-3"}
        async with api.patch(path, json={"credentials": fresh}, headers=bearer(tenant)) as response:
            assert response.status == 200
        seen += list(fresh.values())
        async with api.get(path, headers=bearer(tenant)) as response:
            assert response.status == 200
    # A command the service cannot parse is dead-lettered, and its error logged: never its input.
    poison = {**BODY, "credentials": {**CREDENTIALS, "extra": "xx-SECRET-poison"}}
    seen.append("xx-SECRET-poison")
    envelope = Envelope(source="posint/test", type=contract.CREATE_INTEGRATION, tenantid=tenant.id, data=poison)
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap_servers)
    await producer.start()
    try:
        await producer.send_and_wait(topics.INTEGRATIONS_COMMANDS, envelope.value(), headers=envelope.headers())
    finally:
        await producer.stop()
    await eventually(lambda: '"dead_lettered"' in integrations.log.read_text(), 30, "the poison command's dead letter")
    for service in (integrations, gateway):
        await stop(service.process)
        text = service.log.read_text(errors="backslashreplace")
        assert '"service_stopped"' in text
        for secret in seen:
            assert secret not in text, f"{secret} in {service.log.name}"
    assert "PATCH" in gateway.log.read_text()
