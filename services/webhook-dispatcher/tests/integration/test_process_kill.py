"""The dispatcher as a real process (``python -m webhook_dispatcher``) on a broker and a database of
the test's own, SIGKILLed while deliveries are in flight and started again: every message arrives,
and a receiver deduplicating on webhook-id processes each exactly once. The restarted process also
prunes the messages once they are past their retention (the supervised pruner, wired in bootstrap)."""
from __future__ import annotations

import asyncio
import os
import signal
import sys
import uuid
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import pytest
from aiohttp import web
from aiokafka import AIOKafkaProducer
from standardwebhooks import Webhook, WebhookVerificationError

from posint_common import db
from posint_common.contracts import integrations, topics
from posint_common.envelope import Envelope
from posint_common.testing import eventually, own_database as separate_database
from posint_common.vault import new_key_entry
from webhook_dispatcher import SCHEMA
from webhook_dispatcher.adapters.vault import KeyRing
from webhook_dispatcher.bootstrap import MIGRATIONS
from webhook_dispatcher.seed import seed_endpoint
from webhook_dispatcher.service_layer.fanout import message_id

TENANT, INTEGRATION = "tenant-kill", 77
EVENTS = 30
HOLD = 4  # the held endpoint's first requests hang: its whole per-endpoint cap in flight at the kill


@dataclass
class DedupReceiver:
    """Verifies every request with the endpoint's secret, holds the first HOLD requests to /held
    until ``release``, and processes a webhook-id only the first time it sees it."""

    base: str = ""
    secrets: dict[str, str] = field(default_factory=dict)  # path -> secret
    hits: list[tuple[str, str]] = field(default_factory=list)  # (path, webhook-id) of every request
    processed: Counter = field(default_factory=Counter)
    held: list[str] = field(default_factory=list)
    unverified: int = 0
    release: asyncio.Event = field(default_factory=asyncio.Event)

    async def handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        try:
            Webhook(self.secrets[request.path]).verify(body, dict(request.headers))
        except (KeyError, WebhookVerificationError):
            self.unverified += 1
            return web.Response(status=401)
        webhook_id = request.headers["webhook-id"]
        self.hits.append((request.path, webhook_id))
        if request.path == "/held" and len(self.held) < HOLD:
            self.held.append(webhook_id)
            await self.release.wait()
        if webhook_id not in self.processed:  # a receiver's deduplication, as the README shows it
            self.processed[webhook_id] += 1
        return web.Response(status=204)


@pytest.fixture
async def receiver():
    made = DedupReceiver()
    app = web.Application()
    app.router.add_post("/{tail:.*}", made.handle)
    runner = web.AppRunner(app, shutdown_timeout=0.1)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    made.base = f"http://127.0.0.1:{runner.addresses[0][1]}"
    yield made
    made.release.set()
    await runner.cleanup()


@pytest.fixture
async def own_database(private_broker):
    """A database of the test's own: the process uses the dispatcher's fixed schema, which no other
    test's dispatcher may share."""
    async with separate_database(private_broker.database_url, "wkill") as url:
        yield url


class Dispatcher:
    """``python -m webhook_dispatcher`` with the test's settings; its output in a file."""

    def __init__(self, env: dict[str, str], log: Path) -> None:
        self.env, self.log, self.process = env, log, None

    async def start(self) -> None:
        with self.log.open("ab") as out:
            self.process = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "webhook_dispatcher", env=self.env, stdout=out, stderr=asyncio.subprocess.STDOUT)

    def tail(self) -> str:
        return self.log.read_text(errors="replace")[-4000:]

    async def signal(self, sig: int) -> int:
        self.process.send_signal(sig)
        return await asyncio.wait_for(self.process.wait(), 30)

    async def close(self) -> None:
        if self.process is not None and self.process.returncode is None:
            self.process.kill()
            await self.process.wait()


def sync_completed(index: int) -> Envelope:
    data = {"integration_id": INTEGRATION, "provider": "custom",
            "completed_at": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"), "n": index}
    return Envelope.model_validate({"source": "posint/test-kill", "type": integrations.SYNC_COMPLETED,
                                    "tenantid": TENANT, "subject": f"sync/{uuid.uuid4().hex}", "data": data})


async def test_killed_mid_delivery_and_restarted_every_message_arrives_each_processed_once(
        private_broker, own_database, receiver, tmp_path):
    keys = new_key_entry("k1")
    await db.migrate(own_database, SCHEMA, MIGRATIONS)
    pool = await db.create_pool(own_database, SCHEMA, max_size=2, application="webhook-kill-test")
    dispatchers: list[Dispatcher] = []
    try:
        endpoints = {}
        for path in ("/held", "/ok"):
            endpoint_id, receiver.secrets[path] = await seed_endpoint(
                pool, KeyRing.parse(keys), TENANT, INTEGRATION, "custom", receiver.base + path, ["integration.sync.completed"])
            endpoints[path] = endpoint_id
        env = {**os.environ, "DATABASE_URL": own_database, "KAFKA_BOOTSTRAP_SERVERS": private_broker.bootstrap_servers,
               "KAFKA_SESSION_TIMEOUT_MS": "3000", "HEALTH_PORT": "0", "LOG_LEVEL": "INFO",
               "EGRESS_ALLOW": "127.0.0.0/8", "EGRESS_ALLOW_ONLY": "true",
               "WEBHOOKS_ENCRYPTION_KEYS": keys, "WEBHOOKS_ALLOW_HTTP": "true",
               "WEBHOOKS_CONNECT_TIMEOUT_S": "1", "WEBHOOKS_ATTEMPT_TIMEOUT_S": "3", "WEBHOOKS_LEASE_MARGIN_S": "0.5",
               "WEBHOOKS_RETRY_SCHEDULE_S": "0.2,0.2,0.2,0.2,0.2", "WEBHOOKS_POLL_INTERVAL_MS": "100",
               "WEBHOOKS_PRUNE_INTERVAL_S": "0.2"}
        first = Dispatcher(env, tmp_path / "first.log")
        dispatchers.append(first)
        await first.start()

        producer = AIOKafkaProducer(bootstrap_servers=private_broker.bootstrap_servers)
        await producer.start()
        try:
            events = [sync_completed(index) for index in range(EVENTS)]
            for envelope in events:
                await producer.send_and_wait(topics.INTEGRATIONS_EVENTS, envelope.value(), key=envelope.key,
                                             headers=envelope.headers())
        finally:
            await producer.stop()
        expected = {message_id(f"{envelope.source}/{envelope.id}", endpoint)
                    for envelope in events for endpoint in endpoints.values()}

        try:
            await eventually(lambda: len(receiver.held) == HOLD and len(receiver.processed) >= 3, 60,
                             "deliveries in flight (the held endpoint's cap) and some delivered")
        except AssertionError:
            raise AssertionError(first.tail()) from None
        assert await first.signal(signal.SIGKILL) == -signal.SIGKILL
        delivered_before_kill = len(receiver.processed)
        assert delivered_before_kill < len(expected)  # the kill came mid-delivery
        receiver.release.set()  # the held requests are processed; their answers go to a dead socket

        second = Dispatcher(env, tmp_path / "second.log")
        dispatchers.append(second)
        await second.start()

        async def all_delivered() -> bool:
            done = await pool.fetchval("SELECT count(*) FROM messages WHERE status = 'delivered'")
            return set(receiver.processed) == expected and done == len(expected)

        try:
            await eventually(all_delivered, 90, "every message delivered after the restart")
        except AssertionError:
            raise AssertionError(f"{len(receiver.processed)} of {len(expected)}\n{second.tail()}") from None
        assert receiver.unverified == 0
        sent = Counter(webhook_id for _path, webhook_id in receiver.hits)
        assert set(sent) == expected
        # in flight at the kill: sent again after the restart, with the same webhook-id, so the
        # deduplicating receiver processed each of them once (processed is keyed by webhook-id)
        assert all(sent[webhook_id] >= 2 for webhook_id in receiver.held)
        assert sum(sent.values()) > len(receiver.processed) == len(expected)

        # past their retention, the running process prunes them with their attempts
        await pool.execute("UPDATE messages SET last_attempt_at = now() - interval '721 hours'")

        async def pruned() -> bool:
            return await pool.fetchval("SELECT count(*) FROM messages") == 0 == await pool.fetchval("SELECT count(*) FROM attempts")

        await eventually(pruned, 20, "the delivered messages pruned by the running service")
        assert await second.signal(signal.SIGTERM) == 0, second.tail()
    finally:
        for dispatcher in dispatchers:
            await dispatcher.close()
        await pool.close()
