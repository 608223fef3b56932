"""Secrets never cross the broker, nor wait in an outbox, in clear: the commands that carry credentials
and the replies that carry an ``inbound_secret`` or a webhook signing ``secret`` are sealed with
TRANSPORT_KEYS (posint_common.envelope) where they are made and opened by their reader; the API
answers exactly as before. A sealed command that does not open is dead-lettered at once."""
from __future__ import annotations

import base64
import time

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from gateway.tenants import create_tenant
from integrations.adapters.repository import IntegrationRepository
from posint_common.contracts import integrations as contract, topics
from posint_common.contracts.replies import DEAD_LETTER, DeadLetter
from posint_common.envelope import Envelope, TransportKeyRing
from posint_common.testing import TRANSPORT_KEYS, Tenant, eventually, in_family, read_topic, unique

WATCHED = (topics.INTEGRATIONS_COMMANDS, topics.WEBHOOKS_COMMANDS, topics.GATEWAY_REPLIES, topics.INTEGRATIONS_EVENTS,
           f"{topics.INTEGRATIONS_COMMANDS}.dlq", f"{topics.WEBHOOKS_COMMANDS}.dlq")
OUTBOXES = ("integrations", "webhook_dispatcher")


@pytest.fixture
async def outbox_rows(integrations_service):
    """Every outbox row the services write during the test, copied by a trigger as it is inserted
    (the relay and the direct reply path delete them within milliseconds)."""
    pool = integrations_service.pool
    await pool.execute("CREATE TABLE IF NOT EXISTS public.sealing_outbox_copy (schema_name text, envelope text)")
    await pool.execute("""CREATE OR REPLACE FUNCTION public.sealing_outbox_copy() RETURNS trigger AS $$
        BEGIN INSERT INTO public.sealing_outbox_copy VALUES (TG_TABLE_SCHEMA, NEW.envelope::text); RETURN NEW; END
        $$ LANGUAGE plpgsql""")
    for schema in OUTBOXES:
        await pool.execute(f"CREATE OR REPLACE TRIGGER sealing_outbox_copy AFTER INSERT ON {schema}.outbox"
                           " FOR EACH ROW EXECUTE FUNCTION public.sealing_outbox_copy()")
    try:
        yield lambda: pool.fetch("SELECT schema_name, envelope FROM public.sealing_outbox_copy")
    finally:
        for schema in OUTBOXES:
            await pool.execute(f"DROP TRIGGER IF EXISTS sealing_outbox_copy ON {schema}.outbox")
        await pool.execute("DROP TABLE IF EXISTS public.sealing_outbox_copy")


async def raw_records(bootstrap_servers: str) -> list[tuple[str, list[tuple[str, bytes]], bytes]]:
    """Every record of the watched topics and their generations, from the beginning, as raw bytes."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap_servers, enable_auto_commit=False, fetch_max_wait_ms=20)
    await consumer.start()
    try:
        names = [t for t in await consumer.topics() if any(in_family(t, topic) for topic in WATCHED)]
        partitions = [TopicPartition(t, p) for t in names for p in consumer.partitions_for_topic(t) or ()]
        consumer.assign(partitions)
        await consumer.seek_to_beginning(*partitions)
        ends = await consumer.end_offsets(partitions)
        records = []
        deadline = time.monotonic() + 30
        while [tp for tp in partitions if await consumer.position(tp) < ends[tp]]:
            assert time.monotonic() < deadline, "the watched topics were not read to their end in time"
            for batch in (await consumer.getmany(timeout_ms=200)).values():
                records.extend((r.topic, list(r.headers or ()), r.value or b"") for r in batch)
        return records
    finally:
        await consumer.stop()


async def test_credentials_and_secrets_cross_the_broker_and_the_outbox_sealed(
        api, gateway_service, integrations_service, webhooks_service, infra, outbox_rows):
    tenant = Tenant(*await create_tenant(gateway_service.pool, unique("sealing")))
    credentials = {"client_id": unique("cid-SEALED"), "client_secret": unique("cs-SEALED"),
                   "refresh_token": unique("rt-SEALED")}
    body = {"name": "QuickBooks", "integration_type": "accounting", "provider": "quickbooks",
            "config": {"realm_id": "42"}, "credentials": credentials}
    async with api.post("/api/v1/integrations", json=body, headers=tenant.auth) as response:
        assert response.status == 201, await response.text()
        created = (await response.json())["data"]
    assert created["inbound_secret"] and "credentials" not in created
    new_secret = unique("cs-SEALED-patched")
    async with api.patch(f"/api/v1/integrations/{created['id']}", json={"credentials": {**credentials, "client_secret": new_secret}},
                         headers=tenant.auth) as response:
        assert response.status == 200, await response.text()
    async with integrations_service.pool.acquire() as conn:  # the service opened and stored what was sent
        stored = await IntegrationRepository(conn, tenant.id).get(created["id"])
    assert stored.credentials is not None

    custom = {"name": "Shop", "integration_type": "delivery", "provider": "custom", "config": {}, "credentials": {}}
    async with api.post("/api/v1/integrations", json=custom, headers=tenant.auth) as response:
        assert response.status == 201
        shop = (await response.json())["data"]

    async def learnt() -> bool:
        return await webhooks_service.pool.fetchval(
            "SELECT true FROM webhook_dispatcher.known_integrations WHERE id = $1 AND NOT deleted", shop["id"])

    await eventually(learnt, 30, "the dispatcher to learn the integration")
    hook = {"integration_id": shop["id"], "url": "https://hooks.example.com/sealed", "events": ["order.created"]}
    async with api.post("/api/v1/webhooks", json=hook, headers=tenant.auth) as response:
        assert response.status == 201, await response.text()
        webhook = (await response.json())["data"]
    async with api.post(f"/api/v1/webhooks/{webhook['id']}/rotate-secret", headers=tenant.auth) as response:
        assert response.status == 200, await response.text()
        rotated = (await response.json())["data"]
    assert webhook["secret"].startswith("whsec_") and rotated["secret"].startswith("whsec_")

    secrets = [*credentials.values(), new_secret, created["inbound_secret"], shop["inbound_secret"],
               webhook["secret"], rotated["secret"]]
    records = await raw_records(infra.bootstrap_servers)
    sealed = [r for r in records if ("ce_posintsealed", b"transport2") in r[1]]
    assert {topics.INTEGRATIONS_COMMANDS, topics.WEBHOOKS_COMMANDS, topics.GATEWAY_REPLIES} <= {
        name if not in_family(name, topics.GATEWAY_REPLIES) else topics.GATEWAY_REPLIES for name, _h, _v in sealed}
    for name, headers, value in records:
        for secret in secrets:
            assert secret.encode() not in value, f"a secret in clear on {name}"
            assert all(secret.encode() not in (raw or b"") for _h, raw in headers), f"a secret in a header on {name}"
    rows = await outbox_rows()
    assert any("posintsealed" in envelope for schema, envelope in rows if schema == "webhook_dispatcher")
    assert any("posintsealed" in envelope for schema, envelope in rows if schema == "integrations")
    for schema, envelope in rows:
        for secret in secrets:
            assert secret not in envelope, f"a secret in clear in the {schema} outbox"


def _tampered(envelope: Envelope, how: str) -> Envelope:
    if how == "flipped byte":
        blob = bytearray(base64.b64decode(envelope.data["sealed"]))
        blob[20] ^= 1
        return envelope.model_copy(update={"data": {"sealed": base64.b64encode(bytes(blob)).decode()}})
    if how == "other tenant":
        return envelope.model_copy(update={"tenantid": unique("someone-else")})
    return envelope.model_copy(update={"posintsealed": "unknown-key"})


@pytest.mark.parametrize("how", ["flipped byte", "other tenant", "unknown key"])
async def test_a_sealed_command_that_does_not_open_is_dead_lettered_at_once(how, integrations_service, infra):
    ring = TransportKeyRing.parse(TRANSPORT_KEYS)
    tenant_id = unique("tampered")
    command = contract.CreateIntegration(name="Tampered", integration_type="delivery", provider="custom", config={},
                                         credentials={})
    sealed = Envelope.wrap(command, source="posint/gateway", type=contract.CREATE_INTEGRATION, tenantid=tenant_id).sealed(ring)
    record = _tampered(sealed, how)
    producer = AIOKafkaProducer(bootstrap_servers=infra.bootstrap_servers)
    await producer.start()
    try:
        await producer.send_and_wait(topics.INTEGRATIONS_COMMANDS, record.value(), headers=record.headers())
    finally:
        await producer.stop()
    [dead] = await read_topic(infra.bootstrap_servers, f"{topics.INTEGRATIONS_COMMANDS}.dlq", 1,
                              match=lambda e: e.type == DEAD_LETTER and e.causationid == record.id)
    letter = dead.parse(DeadLetter)
    assert "sealed message does not open" in letter.error and letter.attempts == 1
    assert letter.original_value == record.value().decode()  # kept sealed, as it came
    assert letter.original_headers["ce_posintsealed"] == record.posintsealed
    assert not await integrations_service.pool.fetchval(
        "SELECT count(*) FROM integrations.integrations WHERE tenant_id = $1", tenant_id)


async def test_a_command_sealed_with_the_old_key_opens_after_a_new_key_was_put_first(integrations_service, infra):
    old = TransportKeyRing.parse(TRANSPORT_KEYS.split(",")[1])  # the session's ring: transport2 first, transport1 after
    assert old.primary == "transport1" and TransportKeyRing.parse(TRANSPORT_KEYS).primary == "transport2"
    tenant_id = unique("rotated")
    command = contract.CreateIntegration(name="Rotated", integration_type="delivery", provider="custom", config={},
                                         credentials={})
    record = Envelope.wrap(command, source="posint/gateway", type=contract.CREATE_INTEGRATION, tenantid=tenant_id).sealed(old)
    producer = AIOKafkaProducer(bootstrap_servers=infra.bootstrap_servers)
    await producer.start()
    try:
        await producer.send_and_wait(topics.INTEGRATIONS_COMMANDS, record.value(), headers=record.headers())
    finally:
        await producer.stop()

    async def created() -> bool:
        return await integrations_service.pool.fetchval(
            "SELECT count(*) FROM integrations.integrations WHERE tenant_id = $1 AND name = 'Rotated'", tenant_id) == 1

    await eventually(created, 30, "the command sealed with the old key to be handled")
