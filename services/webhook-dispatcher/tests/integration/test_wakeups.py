"""Wake-ups of the delivery workers by NOTIFY, with the poll out of the way (30 s): new messages go
out at once (first-attempt lane), a message put back after an attempt goes out at once (retry
lane), and a recovery starts at once (the recoverer), against a real receiver on 127.0.0.1."""
from __future__ import annotations

import asyncio
import uuid
from datetime import timedelta

import pytest
from aiohttp import web

from posint_common.egress import EgressPolicy, parse_networks
from posint_common.envelope import utcnow
from posint_common.testing import eventually
from posint_common.vault import new_key_entry
from webhook_dispatcher.adapters import messages
from webhook_dispatcher.adapters.sender import Sender, message
from webhook_dispatcher.adapters.vault import KeyRing
from webhook_dispatcher.domain.retry import RetryPolicy
from webhook_dispatcher.seed import seed_endpoint
from webhook_dispatcher.service_layer.delivery import Deliverer
from webhook_dispatcher.service_layer.fanout import record_for_endpoints

KEYS = KeyRing.parse(new_key_entry("t1"))
TENANT = "tenant-wakeups"
EVENT = "order.created"
POLL_S = 30.0  # far beyond the waits below: only a NOTIFY can make them


@pytest.fixture
async def receiver():
    """Answers 500 to the first request of each message id (so it is put back), 200 afterwards."""
    seen: dict[str, int] = {}

    async def handle(request: web.Request) -> web.Response:
        await request.read()
        message_id = request.headers["webhook-id"]
        seen[message_id] = seen.get(message_id, 0) + 1
        return web.Response(status=500 if request.path == "/fail-first" and seen[message_id] == 1 else 200)

    app = web.Application()
    app.router.add_post("/{tail:.*}", handle)
    runner = web.AppRunner(app, shutdown_timeout=0.1)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    yield f"http://127.0.0.1:{runner.addresses[0][1]}", seen
    await runner.cleanup()


@pytest.fixture
async def deliverer(pool, infra):
    made = Deliverer(pool=pool, dsn=infra.database_url, keys=KEYS,
                     sender=Sender(EgressPolicy(parse_networks("127.0.0.0/8"), allow_only=True), connect_timeout_s=1,
                                   total_timeout_s=2),
                     policy=RetryPolicy((3600.0,), 0.2, 3600, 86_400.0), poll_interval_s=POLL_S)
    await made.start()  # the lanes wait for a wake-up before their first claim
    yield made
    async with asyncio.timeout(10):
        await made.stop()
    await made.sender.close()


async def publish(pool) -> None:
    async with pool.acquire() as conn, conn.transaction():
        await record_for_endpoints(conn, TENANT, 7, EVENT, f"posint/test/{uuid.uuid4().hex}", None,
                                   message(EVENT, {"id": 1}, utcnow()))


async def status(pool) -> list[tuple[str, int]]:
    return [tuple(row) for row in await pool.fetch("SELECT status, attempts FROM messages ORDER BY id")]


async def test_new_messages_go_out_at_once(pool, receiver, deliverer):
    base, seen = receiver
    await seed_endpoint(pool, KEYS, TENANT, 7, "custom", base + "/ok", [EVENT])
    await publish(pool)
    await eventually(lambda: len(seen) == 1, 5, "the new message delivered without waiting for the poll")


async def test_a_message_put_back_goes_out_at_once(pool, receiver, deliverer):
    base, seen = receiver
    endpoint_id, _ = await seed_endpoint(pool, KEYS, TENANT, 7, "custom", base + "/fail-first", [EVENT])
    await publish(pool)

    async def put_back() -> bool:
        return await status(pool) == [("pending", 1)]

    await eventually(put_back, 5, "the first attempt failed, its retry an hour away")
    message_id = await pool.fetchval("SELECT message_id FROM messages")
    async with pool.acquire() as conn:
        assert await messages.resend(conn, endpoint_id, message_id)

    async def delivered() -> bool:
        return await status(pool) == [("delivered", 2)]

    await eventually(delivered, 5, "the retry sent without waiting for the poll")


async def test_a_recovery_starts_at_once(pool, receiver, deliverer):
    base, seen = receiver
    endpoint_id, _ = await seed_endpoint(pool, KEYS, TENANT, 7, "custom", base + "/ok", [EVENT])
    await pool.execute("UPDATE endpoints SET is_active = false WHERE id = $1", endpoint_id)
    async with pool.acquire() as conn, conn.transaction():  # recorded while switched off: kept as failed
        await messages.record(conn, [endpoint_id], [f"msg_{uuid.uuid4().hex}"], EVENT, None, "{}")
        await conn.execute("UPDATE messages SET status = 'failed'")
    await pool.execute("UPDATE endpoints SET is_active = true WHERE id = $1", endpoint_id)
    async with pool.acquire() as conn:
        await messages.open_recovery(conn, endpoint_id, utcnow() - timedelta(hours=1))
    await eventually(lambda: len(seen) == 1, 5, "the recovered message sent without waiting for the poll")
