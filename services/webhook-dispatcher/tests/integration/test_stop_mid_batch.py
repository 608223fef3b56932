"""Stopping the deliverer while a batch of outcomes is in the middle of its statement (blocked on a
row lock another transaction holds): the stop returns at once (the statement is cancelled, its
connection goes back to the pool and the pool closes), nothing of the batch is committed, and the
message keeps its lease, so it is attempted again once the lease runs out (at least once)."""
from __future__ import annotations

import asyncio
import uuid
from datetime import timezone

import asyncpg
import pytest

from posint_common import db
from posint_common.egress import EgressPolicy, parse_networks
from posint_common.envelope import utcnow
from posint_common.testing import eventually
from posint_common.vault import new_key_entry
from webhook_dispatcher.adapters.sender import Attempt, Sender
from webhook_dispatcher.adapters.vault import KeyRing
from webhook_dispatcher.bootstrap import MIGRATIONS
from webhook_dispatcher.domain.retry import RetryPolicy
from webhook_dispatcher.seed import seed_endpoint
from webhook_dispatcher.service_layer.delivery import Deliverer
from webhook_dispatcher.service_layer.fanout import record_for_endpoints

KEYS = KeyRing.parse(new_key_entry("t1"))
TENANT = "tenant-stop-mid-batch"
EVENT = "integration.sync.completed"
APPLICATION = f"webhook-stop-{uuid.uuid4().hex[:8]}"


@pytest.fixture
async def schema(infra):
    name = f"wh_{uuid.uuid4().hex[:10]}"
    await db.migrate(infra.database_url, name, MIGRATIONS)
    return name


async def blocked(infra) -> bool:
    """Whether the deliverer's pool has a statement waiting for a lock."""
    conn = await asyncpg.connect(infra.database_url)
    try:
        return bool(await conn.fetchval(
            "SELECT count(*) FROM pg_stat_activity WHERE application_name = $1 AND wait_event_type = 'Lock'",
            APPLICATION))
    finally:
        await conn.close()


@pytest.mark.parametrize("outcome", ["success", "http_error"])
async def test_a_stop_during_a_blocked_batch_returns_at_once(infra, schema, outcome):
    pool = await db.create_pool(infra.database_url, schema, max_size=4, application=APPLICATION)
    holder = await asyncpg.connect(infra.database_url, server_settings={"search_path": schema})
    try:
        await seed_endpoint(pool, KEYS, TENANT, 1, "custom", "http://127.0.0.1:9/x", [EVENT])
        async with pool.acquire() as conn, conn.transaction():
            await record_for_endpoints(conn, TENANT, 1, EVENT, "event/1", None, "{}")
        await pool.execute("UPDATE messages SET lease_until = now() + interval '1 hour'")  # as if claimed
        row = await pool.fetchrow("SELECT id, message_id, endpoint_id FROM messages")
        made = Deliverer(pool=pool, dsn=infra.database_url, keys=KEYS,
                         sender=Sender(EgressPolicy(parse_networks("127.0.0.0/8"), allow_only=True)),
                         policy=RetryPolicy((60.0,), 0.2, 3600, 3600.0), poll_interval_s=30.0)
        await made.start()
        await holder.execute("UPDATE endpoints SET failing_since = now()")  # both batch kinds lock the endpoint
        await holder.execute("BEGIN")
        await holder.execute("SELECT id FROM endpoints FOR UPDATE")
        attempt = Attempt(row["message_id"], outcome, 200 if outcome == "success" else 500, 1.0, None, "",
                          utcnow().astimezone(timezone.utc))
        writer = made.successes if outcome == "success" else made.failures
        extra = () if outcome == "success" else (60.0,)
        recording = asyncio.create_task(writer.record(row["id"], row["endpoint_id"], 1, attempt, *extra))
        made.lanes[0].tasks.add(recording)  # as the attempt's own task, which a stop cancels
        await eventually(lambda: blocked(infra), 10, "the batch statement waiting for the endpoint's lock")
        async with asyncio.timeout(5):
            await made.stop()
        assert recording.cancelled()
        await holder.execute("ROLLBACK")
        async with asyncio.timeout(5):
            await pool.close()
        found = await holder.fetchrow("SELECT status, attempts, lease_until > now() AS leased FROM messages")
        assert tuple(found) == ("pending", 0, True)  # not recorded: sent again when the lease runs out
        assert await holder.fetchval("SELECT count(*) FROM attempts") == 0
    finally:
        pool.terminate()
        await holder.close()
