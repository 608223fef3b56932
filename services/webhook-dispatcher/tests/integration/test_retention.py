"""Retention of the delivery tables on the session's Postgres, each test in a schema of its own:
delivered messages go with their attempts after the retention, finally failed ones only after the
longer window, pending ones never; in batches, under the advisory lock, and from the running task."""
from __future__ import annotations

import itertools
import uuid

import pytest

from posint_common import db
from posint_common.envelope import utcnow
from posint_common.testing import eventually
from posint_common.vault import new_key_entry
from webhook_dispatcher.adapters.retention import PRUNED, message_pruner
from webhook_dispatcher.adapters.sender import message
from webhook_dispatcher.adapters.vault import KeyRing
from webhook_dispatcher.bootstrap import MIGRATIONS
from webhook_dispatcher.config import WebhooksSettings
from webhook_dispatcher.seed import seed_endpoint
from webhook_dispatcher.service_layer.fanout import record_for_endpoints

KEYS = KeyRing.parse(new_key_entry("t1"))
TENANT = "tenant-retention"
HOURS, FAILED_HOURS = 720, 2160
INTEGRATIONS = itertools.count(100)


@pytest.fixture
async def schema_pool(infra):
    schema = f"wr_{uuid.uuid4().hex[:10]}"
    await db.migrate(infra.database_url, schema, MIGRATIONS)
    pool = await db.create_pool(infra.database_url, schema, max_size=4, application="webhook-retention-tests")
    yield schema, pool
    await pool.close()


async def settled(pool, status: str, hours_ago: float, attempts: int = 2) -> str:
    """A message to a fresh endpoint, settled ``hours_ago`` with ``attempts`` logged attempts."""
    integration_id = next(INTEGRATIONS)  # one endpoint per integration: the message goes to it alone
    endpoint_id, _ = await seed_endpoint(pool, KEYS, TENANT, integration_id, "custom", "http://127.0.0.1:9/in",
                                         ["order.created"])
    body = message("order.created", {"id": 1}, utcnow())
    async with pool.acquire() as conn, conn.transaction():
        await record_for_endpoints(conn, TENANT, integration_id, "order.created", f"posint/test/{uuid.uuid4().hex}", None, body)
        row = await conn.fetchrow(
            "UPDATE messages SET status = $2, attempts = $3, last_attempt_at = now() - make_interval(secs => $4)"
            " WHERE endpoint_id = $1 RETURNING id, message_id", endpoint_id, status, attempts, hours_ago * 3600)
        for number in range(1, attempts + 1):
            await conn.execute(
                "INSERT INTO attempts (message, endpoint_id, attempt, attempted_at, outcome, latency_ms)"
                " VALUES ($1, $2, $3, now(), 'http_error', 1)", row["id"], endpoint_id, number)
    return row["message_id"]


async def left(pool) -> set[str]:
    return {row["message_id"] for row in await pool.fetch("SELECT message_id FROM messages")}


async def orphans_and_attempts(pool) -> tuple[int, int]:
    return (await pool.fetchval("SELECT count(*) FROM attempts a WHERE NOT EXISTS"
                                " (SELECT 1 FROM messages m WHERE m.id = a.message)"),
            await pool.fetchval("SELECT count(*) FROM attempts"))


def pruner(pool, schema, **options):
    return message_pruner(pool, schema, retention_hours=HOURS, failed_retention_hours=FAILED_HOURS,
                          interval_s=options.pop("interval_s", 3600), **options)


async def test_delivered_go_after_the_retention_failed_after_the_longer_one_pending_never(schema_pool):
    schema, pool = schema_pool
    old_delivered = [await settled(pool, "delivered", HOURS + 1) for _ in range(3)]
    recent_delivered = await settled(pool, "delivered", HOURS - 1)
    failed_in_window = await settled(pool, "failed", HOURS + 1)  # still recoverable
    old_failed = await settled(pool, "failed", FAILED_HOURS + 1)
    old_pending = await settled(pool, "pending", FAILED_HOURS + 100)  # being retried: never pruned
    delivered_before = PRUNED.labels("delivered")._value.get()
    failed_before = PRUNED.labels("failed")._value.get()

    assert await pruner(pool, schema).prune() == 4

    assert await left(pool) == {recent_delivered, failed_in_window, old_pending}
    assert not set(old_delivered) & await left(pool) and old_failed not in await left(pool)
    assert await orphans_and_attempts(pool) == (0, 6)  # the kept messages' attempts stay
    assert PRUNED.labels("delivered")._value.get() - delivered_before == 3
    assert PRUNED.labels("failed")._value.get() - failed_before == 1


async def test_in_batches_until_none_is_left(schema_pool):
    schema, pool = schema_pool
    for _ in range(7):
        await settled(pool, "delivered", HOURS + 2)
    kept = await settled(pool, "delivered", 1)
    assert await pruner(pool, schema, batch_size=2).prune() == 7
    assert await left(pool) == {kept}
    assert await orphans_and_attempts(pool) == (0, 2)


async def test_another_replica_pruning_holds_it_off(schema_pool):
    schema, pool = schema_pool
    old = await settled(pool, "delivered", HOURS + 1)
    async with pool.acquire() as conn, conn.transaction():  # a replica in the middle of a batch
        await conn.execute("SELECT pg_advisory_xact_lock(hashtext($1))", f"posint.prune.{schema}.webhooks")
        assert await pruner(pool, schema).prune() is None
        assert await left(pool) == {old}
    assert await pruner(pool, schema).prune() == 1


async def test_the_running_task_prunes_and_keeps_going(schema_pool):
    schema, pool = schema_pool
    running = pruner(pool, schema, interval_s=0.05)
    await running.start()
    try:
        await settled(pool, "delivered", HOURS + 1)

        async def empty() -> bool:
            return not await left(pool)

        await eventually(empty, 10, "the first expired message pruned")
        await settled(pool, "failed", FAILED_HOURS + 1)
        await eventually(empty, 10, "the next one pruned by the same task")
        assert not running.task.done()
    finally:
        await running.stop()


def test_failed_messages_are_kept_at_least_as_long_as_delivered_ones(infra):
    base = {"webhooks_encryption_keys": new_key_entry("t1")}
    defaults = infra.settings(WebhooksSettings, **base)
    assert (defaults.webhooks_retention_hours, defaults.webhooks_failed_retention_hours) == (720, 2160)
    with pytest.raises(ValueError, match="WEBHOOKS_FAILED_RETENTION_HOURS"):
        infra.settings(WebhooksSettings, **base, webhooks_retention_hours=100, webhooks_failed_retention_hours=10)
