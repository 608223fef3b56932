"""Request/reply through rolled topic generations (KAFKA_ROLL_TOPICS, as make run starts Tansu):
requests keep being answered while the query and reply topics roll, and drained generations are
deleted, so the embedded broker's per-fetch cost stays bounded. Its own broker, so the topic list
is this test's alone."""
import asyncio

import aiohttp
import pytest
from aiokafka.admin import AIOKafkaAdminClient

from gateway.bootstrap import bootstrap as gateway_bootstrap
from gateway.config import GatewaySettings
from gateway.tenants import create_tenant
from integrations.adapters.vault import new_key_entry
from integrations.bootstrap import bootstrap as integrations_bootstrap
from integrations.config import IntegrationsSettings
from posint_common import topic_roll
from posint_common.contracts import topics
from posint_common.testing import eventually, started, unique

ROLL_RECORDS = 10


@pytest.fixture
async def rolling(private_broker):
    own = private_broker
    integrations = await started(integrations_bootstrap(own.settings(
        IntegrationsSettings, integrations_encryption_keys=new_key_entry("test"), kafka_roll_records=ROLL_RECORDS)))
    gateway = await started(gateway_bootstrap(own.settings(GatewaySettings, gateway_port=0, kafka_roll_records=ROLL_RECORDS)))
    admin = AIOKafkaAdminClient(bootstrap_servers=own.bootstrap_servers)
    await admin.start()
    _tenant_id, key = await create_tenant(gateway.pool, unique("rolling"))
    base = f"http://127.0.0.1:{gateway.ports['http']}"
    async with aiohttp.ClientSession(base_url=base, timeout=aiohttp.ClientTimeout(total=20)) as session:
        yield session, {"Authorization": f"Bearer {key}"}, admin
    await admin.close()
    await asyncio.wait_for(gateway.stop(), 30)
    await asyncio.wait_for(integrations.stop(), 30)


async def generations(admin, base: str) -> list[str]:
    return topic_roll.generations(await admin.list_topics(), base)


async def reply_generations(admin) -> list[str]:
    return [t for t in await admin.list_topics() if topic_roll.base_of(t).startswith(topics.GATEWAY_REPLIES + ".")]


async def ask(session, headers, n: int) -> None:
    for _ in range(n):
        async with session.get("/api/v1/integrations", headers=headers) as response:
            assert response.status == 200, await response.text()
            assert await response.json() == {"data": []}


async def test_requests_are_answered_across_rolls_and_drained_generations_are_deleted(rolling):
    session, headers, admin = rolling
    [first_query] = await generations(admin, topics.INTEGRATIONS_QUERIES)
    [first_reply] = await reply_generations(admin)
    seen_queries, seen_replies = {first_query}, {first_reply}

    async def rolled_twice() -> bool:
        await ask(session, headers, ROLL_RECORDS)
        seen_queries.update(await generations(admin, topics.INTEGRATIONS_QUERIES))
        seen_replies.update(await reply_generations(admin))
        return len(seen_queries) >= 3 and len(seen_replies) >= 3

    await eventually(rolled_twice, 60, "query and reply topics to roll at least twice")

    async def first_ones_deleted() -> bool:
        await ask(session, headers, 1)
        listed = set(await admin.list_topics())
        return first_query not in listed and first_reply not in listed

    await eventually(first_ones_deleted, 60, "the drained first generations to be deleted")
    await ask(session, headers, 5)  # still answered after the deletions
    live = await generations(admin, topics.INTEGRATIONS_QUERIES)
    superseded = [older for older, newer in zip(live, live[1:])
                  if topic_roll.now_ms() - topic_roll.created_ms(newer) > (topic_roll.GRACE_S + 5) * 1000]
    assert not superseded, "a generation superseded longer than the grace ago is still there"
