"""A signing secret the key ring can no longer open (its key removed from WEBHOOKS_ENCRYPTION_KEYS)
fails the message for good, with a clear error in the deliveries log and one error line, never the
secret; it does not come back every lease period. A rotation's previous secret that no longer opens
is left out: the message goes with the current signature. Receivers on 127.0.0.1, own schema."""
from __future__ import annotations

import uuid

import pytest
from aiohttp import web
from standardwebhooks import Webhook
from structlog.testing import capture_logs

from posint_common.egress import EgressPolicy, parse_networks
from posint_common.envelope import utcnow
from posint_common.testing import eventually
from posint_common.vault import new_key_entry
from webhook_dispatcher.adapters.repository import EndpointRepository
from webhook_dispatcher.adapters.sender import Sender, message
from webhook_dispatcher.adapters.vault import KeyRing, associated_data
from webhook_dispatcher.domain.model import new_secret
from webhook_dispatcher.domain.retry import RetryPolicy
from webhook_dispatcher.seed import seed_endpoint
from webhook_dispatcher.service_layer.delivery import Deliverer
from webhook_dispatcher.service_layer.fanout import record_for_endpoints

OLD, NEW = new_key_entry("old"), new_key_entry("new")
TENANT = "tenant-keys"


@pytest.fixture
async def receiver():
    hits = []

    async def handle(request: web.Request) -> web.Response:
        hits.append((dict(request.headers), await request.read()))
        return web.Response(status=204)

    app = web.Application()
    app.router.add_post("/in", handle)
    runner = web.AppRunner(app, shutdown_timeout=0.1)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    yield f"http://127.0.0.1:{runner.addresses[0][1]}/in", hits
    await runner.cleanup()


async def publish(pool) -> None:
    body = message("order.created", {"id": 1}, utcnow())
    async with pool.acquire() as conn, conn.transaction():
        await record_for_endpoints(conn, TENANT, 7, "order.created", f"posint/test/{uuid.uuid4().hex}", None, body)


async def deliver(pool, infra, keys: str):
    made = Deliverer(pool=pool, dsn=infra.database_url, keys=KeyRing.parse(keys),
                     sender=Sender(EgressPolicy(parse_networks("127.0.0.0/8"), allow_only=True), connect_timeout_s=1,
                                   total_timeout_s=2),
                     policy=RetryPolicy((0.05, 0.05), 0.2, 3600, 3600), poll_interval_s=0.05, lease_s=0.3)
    await made.start()
    return made


async def test_a_secret_whose_key_was_removed_fails_the_message_for_good(pool, infra, receiver):
    url, hits = receiver
    endpoint_id, secret = await seed_endpoint(pool, KeyRing.parse(OLD), TENANT, 7, "custom", url, ["order.created"])
    await publish(pool)
    with capture_logs() as logs:
        running = await deliver(pool, infra, NEW)  # the key "old" sealed the secret; the ring lost it
        try:
            async def failed() -> bool:
                return await pool.fetchval("SELECT status FROM messages") == "failed"

            await eventually(failed, 10, "the message failed for good")
            await publish(pool)  # a later message: failed too, not retried
            await eventually(lambda: sum(1 for line in logs if line["event"] == "webhook_secret_undecryptable") == 2,
                             10, "one error line per message")
        finally:
            await running.stop()
            await running.sender.close()
    rows = await pool.fetch("SELECT m.status, m.attempts, m.lease_until, a.outcome, a.error, a.status_code"
                            " FROM messages m JOIN attempts a ON a.message = m.id ORDER BY m.id")
    assert [(row["status"], row["attempts"], row["outcome"]) for row in rows] == [("failed", 1, "secret_unavailable")] * 2
    assert all(row["lease_until"] is None and row["status_code"] is None for row in rows)  # never claimed again
    error = rows[0]["error"]
    assert "cannot be decrypted" in error and "'old'" in error and "WEBHOOKS_ENCRYPTION_KEYS" in error
    assert hits == []  # nothing unsigned or wrongly signed went out
    lines = [line for line in logs if line["event"] == "webhook_secret_undecryptable"]
    assert lines[0]["log_level"] == "error" and lines[0]["endpoint"] == endpoint_id
    assert secret not in repr(logs) and secret.removeprefix("whsec_") not in repr(logs)
    assert await pool.fetchval("SELECT failing_since FROM endpoints") is None  # our fault, not the receiver's


async def test_a_rotations_previous_secret_that_no_longer_opens_is_left_out(pool, infra, receiver):
    url, hits = receiver
    endpoint_id, _old_secret = await seed_endpoint(pool, KeyRing.parse(OLD), TENANT, 7, "custom", url, ["order.created"])
    current = new_secret()
    both = KeyRing.parse(f"{NEW},{OLD}")  # "new" seals from now on
    async with pool.acquire() as conn, conn.transaction():
        await EndpointRepository(conn, TENANT).rotate(
            endpoint_id, both.seal(current.encode(), associated_data(TENANT, endpoint_id)), 3600)
    await publish(pool)
    running = await deliver(pool, infra, NEW)  # the previous secret's key is gone
    try:
        await eventually(lambda: len(hits) == 1, 10, "the message delivered")
    finally:
        await running.stop()
        await running.sender.close()
    headers, body = hits[0]
    assert len(headers["webhook-signature"].split(" ")) == 1
    Webhook(current).verify(body, headers)
