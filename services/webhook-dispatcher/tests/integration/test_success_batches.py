"""Successes recorded in batches (service_layer.successes) against the session's Postgres: a batch
lands in one go (attempts logged, messages delivered, failure clocks stopped), and a batch that
fails is tried one by one, so one bad success does not take the others down with it."""
from __future__ import annotations

import asyncio
from datetime import timezone


from posint_common.envelope import utcnow
from posint_common.vault import new_key_entry
from webhook_dispatcher.adapters.sender import Attempt
from webhook_dispatcher.adapters.vault import KeyRing
from webhook_dispatcher.seed import seed_endpoint
from webhook_dispatcher.service_layer.fanout import record_for_endpoints
from webhook_dispatcher.service_layer.successes import successes as success_writer

KEYS = KeyRing.parse(new_key_entry("t1"))
TENANT = "tenant-batches"


def success(message_id: str) -> Attempt:
    return Attempt(message_id, "success", 204, 1.5, None, "", utcnow().astimezone(timezone.utc))


async def recorded(pool, endpoints: int) -> list:
    for n in range(endpoints):
        await seed_endpoint(pool, KEYS, TENANT, 1, "custom", f"http://127.0.0.1:9/{n}", ["integration.sync.completed"])
    async with pool.acquire() as conn, conn.transaction():
        await record_for_endpoints(conn, TENANT, 1, "integration.sync.completed", "event/1", None, "{}")
    await pool.execute("UPDATE endpoints SET failing_since = now()")
    return await pool.fetch("SELECT id, message_id, endpoint_id FROM messages ORDER BY id")


async def test_a_batch_of_successes_is_recorded_together(pool):
    rows = await recorded(pool, 5)
    successes = success_writer(pool)
    writer = asyncio.create_task(successes.run_forever())
    try:
        await asyncio.wait_for(asyncio.gather(*(successes.record(row["id"], row["endpoint_id"], 1,
                                                                 success(row["message_id"])) for row in rows)), 10)
    finally:
        writer.cancel()
    assert {row["status"] for row in await pool.fetch("SELECT status FROM messages")} == {"delivered"}
    logged = await pool.fetch("SELECT message, attempt, outcome, status_code FROM attempts ORDER BY message")
    assert [(row["message"], row["attempt"], row["outcome"], row["status_code"]) for row in logged] == \
           [(row["id"], 1, "success", 204) for row in rows]
    assert await pool.fetchval("SELECT count(*) FROM endpoints WHERE failing_since IS NOT NULL") == 0


async def test_a_failing_batch_is_tried_one_by_one(pool):
    rows = await recorded(pool, 3)
    successes = success_writer(pool)
    writer = asyncio.create_task(successes.run_forever())
    missing = max(row["id"] for row in rows) + 1000  # no such message: its attempt row breaks the batch
    try:
        outcomes = await asyncio.wait_for(asyncio.gather(
            *(successes.record(row["id"], row["endpoint_id"], 1, success(row["message_id"])) for row in rows),
            successes.record(missing, rows[0]["endpoint_id"], 1, success("msg_missing")), return_exceptions=True), 10)
    finally:
        writer.cancel()
    assert outcomes[:3] == [None, None, None] and isinstance(outcomes[3], Exception)
    assert {row["status"] for row in await pool.fetch("SELECT status FROM messages")} == {"delivered"}
    assert await pool.fetchval("SELECT count(*) FROM attempts") == 3
