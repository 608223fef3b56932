"""Failed attempts recorded in batches (the deliverer's ``failures`` writer) against the session's
Postgres: a burst of failures is one write (attempts logged, retries scheduled, given-up messages
failed, failure clocks started where they were not), an endpoint failing every attempt too long is
disabled in the batch's transaction (and ``webhook.disabled`` recorded), and a batch that fails is
tried one by one, so one bad outcome does not take the others down with it."""
from __future__ import annotations

import asyncio
import uuid
from datetime import timedelta, timezone

import pytest

from posint_common.egress import EgressPolicy, parse_networks
from posint_common.envelope import utcnow
from posint_common.vault import new_key_entry
from webhook_dispatcher.adapters.sender import Attempt, Sender
from webhook_dispatcher.adapters.vault import KeyRing
from webhook_dispatcher.domain.retry import RetryPolicy
from webhook_dispatcher.seed import seed_endpoint
from webhook_dispatcher.service_layer.delivery import Deliverer
from webhook_dispatcher.service_layer.fanout import record_for_endpoints

KEYS = KeyRing.parse(new_key_entry("t1"))
TENANT = "tenant-failure-batches"
EVENT = "integration.sync.completed"


@pytest.fixture
async def writer(pool, infra):
    """A deliverer whose failures writer runs (no lanes: the test hands failures over itself);
    ``writes`` lists the size of each batch written."""
    made = Deliverer(pool=pool, dsn=infra.database_url, keys=KEYS,
                     sender=Sender(EgressPolicy(parse_networks("127.0.0.0/8"), allow_only=True)),
                     policy=RetryPolicy((60.0,), 0.2, 3600, 3600.0))
    made.writes = []
    write = made.failures.write

    async def counted(conn, batch):
        made.writes.append(len(batch))
        return await write(conn, batch)

    made.failures.write = counted
    task = asyncio.create_task(made.failures.run_forever())
    yield made
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)


def failure(message_id: str, status: int | None = 500, outcome: str = "http_error") -> Attempt:
    return Attempt(message_id, outcome, status, 2.5, None if status is None else f"HTTP {status}",
                   None if status is None else "nope", utcnow().astimezone(timezone.utc))


async def recorded(pool, urls: list[str], events=(EVENT,)) -> list:
    for url in urls:
        await seed_endpoint(pool, KEYS, TENANT, 1, "custom", url, list(events))
    async with pool.acquire() as conn, conn.transaction():
        await record_for_endpoints(conn, TENANT, 1, EVENT, f"event/{uuid.uuid4().hex}", None, "{}")
    return await pool.fetch("SELECT id, message_id, endpoint_id FROM messages ORDER BY id")


async def test_a_burst_of_failures_is_one_batch(pool, writer):
    rows = await recorded(pool, [f"http://127.0.0.1:9/{n}" for n in range(3)])
    earlier = utcnow() - timedelta(minutes=5)
    await pool.execute("UPDATE endpoints SET failing_since = $1 WHERE id = $2", earlier, rows[2]["endpoint_id"])
    attempts = [failure(rows[0]["message_id"]), failure(rows[1]["message_id"], None, "timeout"),
                failure(rows[2]["message_id"], 429)]
    delays = [60.0, None, 0.0]  # retried in a minute, given up, due again at once (Retry-After: 0)
    await asyncio.wait_for(asyncio.gather(*(
        writer.failures.record(row["id"], row["endpoint_id"], 1, attempt, delay)
        for row, attempt, delay in zip(rows, attempts, delays))), 10)
    assert writer.writes == [3]
    found = {row["id"]: row for row in await pool.fetch(
        "SELECT id, status, attempts, due_at - now() AS wait, lease_until FROM messages")}
    assert [found[row["id"]]["status"] for row in rows] == ["pending", "failed", "pending"]
    assert all(found[row["id"]]["attempts"] == 1 and found[row["id"]]["lease_until"] is None for row in rows)
    assert timedelta(seconds=55) < found[rows[0]["id"]]["wait"] <= timedelta(seconds=60)
    assert found[rows[2]["id"]]["wait"] <= timedelta(0)
    logged = await pool.fetch("SELECT message, attempt, outcome, status_code, error, response_body FROM attempts ORDER BY message")
    assert [tuple(row) for row in logged] == [
        (rows[0]["id"], 1, "http_error", 500, "HTTP 500", "nope"), (rows[1]["id"], 1, "timeout", None, None, None),
        (rows[2]["id"], 1, "http_error", 429, "HTTP 429", "nope")]
    clocks = {row["id"]: row["failing_since"] for row in await pool.fetch("SELECT id, failing_since FROM endpoints")}
    assert clocks[rows[0]["endpoint_id"]] == attempts[0].attempted_at
    assert clocks[rows[1]["endpoint_id"]] == attempts[1].attempted_at
    assert clocks[rows[2]["endpoint_id"]] == earlier  # already failing: its clock is not restarted


async def test_a_batch_disables_an_endpoint_failing_too_long(pool, writer):
    rows = await recorded(pool, ["http://127.0.0.1:9/failing"])
    await seed_endpoint(pool, KEYS, TENANT, 1, "custom", "http://127.0.0.1:9/watcher", ["webhook.disabled"])
    await pool.execute("UPDATE endpoints SET failing_since = now() - interval '2 hours' WHERE id = $1", rows[0]["endpoint_id"])
    await asyncio.wait_for(writer.failures.record(rows[0]["id"], rows[0]["endpoint_id"], 1,
                                                  failure(rows[0]["message_id"]), 60.0), 10)
    endpoint = await pool.fetchrow("SELECT is_active, disabled_reason FROM endpoints WHERE id = $1", rows[0]["endpoint_id"])
    assert endpoint["is_active"] is False and "every attempt failed since" in endpoint["disabled_reason"]
    assert await pool.fetchval("SELECT count(*) FROM messages WHERE event_type = 'webhook.disabled'") == 1


async def test_a_failing_batch_is_tried_one_by_one(pool, writer):
    rows = await recorded(pool, [f"http://127.0.0.1:9/{n}" for n in range(2)])
    missing = max(row["id"] for row in rows) + 1000  # no such message: its attempt row breaks the batch
    outcomes = await asyncio.wait_for(asyncio.gather(
        *(writer.failures.record(row["id"], row["endpoint_id"], 1, failure(row["message_id"]), 60.0) for row in rows),
        writer.failures.record(missing, rows[0]["endpoint_id"], 1, failure("msg_missing"), 60.0),
        return_exceptions=True), 10)
    assert outcomes[:2] == [None, None] and isinstance(outcomes[2], Exception)
    assert await pool.fetchval("SELECT count(*) FROM attempts") == 2
    assert {row["status"] for row in await pool.fetch("SELECT status FROM messages")} == {"pending"}
