"""The orders service stopped between the accept's commit and the relay's publish (and a relay that
published but died before deleting its row): after the restart the POS injection still reaches an
inbox-deduplicating consumer, and exactly once. On a database and broker of the test's own, so the
relays and consumer groups it starts never meet the session's services."""
from __future__ import annotations

import os
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import pytest

from orders.adapters.repository import OrderRepository
from orders.bootstrap import bootstrap
from orders.config import OrdersSettings
from orders.domain.lifecycle import Source, Status
from posint_common import kafka
from posint_common.consumer import Route
from posint_common.contracts import orders as contract, pos, topics
from posint_common.contracts.inbound import NormalizedOrder
from posint_common.devstack.broker import EmbeddedBroker
from posint_common.envelope import Envelope, utcnow
from posint_common.runtime import ServiceRuntime
from posint_common.settings import ServiceSettings
from posint_common.testing import Infra, eventually, read_topic, started

TENANT = "tenant-crash"


@pytest.fixture
async def own(_embedded, tmp_path):
    broker = EmbeddedBroker(tmp_path / "tansu.log")
    bootstrap_servers = broker.start()
    database = f"orders_crash_{os.getpid()}_{os.urandom(4).hex()}"
    admin = await asyncpg.connect(_embedded.database_url)
    await admin.execute(f'CREATE DATABASE "{database}"')
    try:
        await kafka.ensure_topics(bootstrap_servers, topics.ALL)
        yield Infra(urlunsplit(urlsplit(_embedded.database_url)._replace(path="/" + database)), bootstrap_servers)
    finally:
        broker.stop()
        await admin.execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
        await admin.close()


async def probe(own: Infra, tmp_path) -> ServiceRuntime:
    """A POS-side consumer with posint's inbox: it records each injection it handles."""
    migrations = tmp_path / "probe-migrations"
    migrations.mkdir()
    (migrations / "0001_probe.sql").write_text("CREATE TABLE injections (order_id bigint, attempt int);")

    async def handle(ctx, command: pos.InjectOrder) -> None:
        await ctx.conn.execute("INSERT INTO injections VALUES ($1, $2)", command.order_id, command.attempt)

    runtime = ServiceRuntime(name="posprobe", schema="posprobe", settings=own.settings(ServiceSettings),
                             migrations=migrations)
    await runtime.start_core()
    runtime.add_consumer("inject", (topics.POS_ORDERS,), {pos.INJECT_ORDER: Route(pos.InjectOrder, handle)},
                         ignore_unknown_types=True)
    await runtime.start()
    return runtime


async def test_an_injection_committed_before_a_crash_reaches_the_pos_exactly_once(own, tmp_path):
    settings = own.settings(OrdersSettings, orders_accept_wait_ms=0)
    first = await started(bootstrap(settings))
    producer = kafka.make_producer(settings, client_id="test")
    await producer.start()
    runtimes = [first]
    try:
        normalized = NormalizedOrder(external_id="crash-1", placed_at=utcnow(), fulfillment="pickup",
                                     items=[{"name": "Tea", "quantity": 1, "unit_price": "2.50"}],
                                     subtotal="2.50", tax="0", total="2.50", currency="USD").model_dump(mode="json")
        async with first.pool.acquire() as conn, conn.transaction():
            repository = OrderRepository(conn, TENANT)
            order = await repository.add(1, "custom", "crash-1", normalized, normalized, utcnow(), None)
            await repository.record(order.id, None, Status.RECEIVED, Source.PLATFORM)

        await first.relay.stop()  # from here on nothing this process commits is published
        command = Envelope.wrap(contract.AcceptExternalOrder(id=order.id), source="posint/gateway",
                                type=contract.ACCEPT_EXTERNAL_ORDER, subject=str(order.id), tenantid=TENANT,
                                replyto=topics.GATEWAY_REPLIES)
        await kafka.send(producer, topics.ORDERS_COMMANDS, command, 5)
        row = None

        async def committed() -> bool:
            nonlocal row
            row = await first.pool.fetchrow("SELECT envelope FROM orders.outbox WHERE topic = $1", topics.POS_ORDERS)
            return row is not None

        await eventually(committed, 30, "the accept's commit")
        injection = Envelope.model_validate_json(row["envelope"])
        await kafka.send(producer, topics.POS_ORDERS, injection, 5)  # a relay that published, then died before deleting
        await first.stop()  # killed: the row is still in the outbox

        second = await started(bootstrap(settings))
        runtimes.append(second)
        await eventually(lambda: second.pool.fetchval("SELECT count(*) = 0 FROM orders.outbox WHERE topic = $1",
                                                      topics.POS_ORDERS), 30, "the restarted relay to publish")
        copies = await read_topic(own.bootstrap_servers, topics.POS_ORDERS, 2, match=lambda e: e.id == injection.id)
        assert len(copies) == 2  # at least once: the same message twice on the topic

        pos_side = await probe(own, tmp_path)
        runtimes.append(pos_side)
        sentinel = Envelope.wrap(pos.InjectOrder.model_validate({**injection.data, "attempt": 99}), source="test",
                                 type=pos.INJECT_ORDER, subject=injection.subject, tenantid=TENANT)
        await kafka.send(producer, topics.POS_ORDERS, sentinel, 5)  # same key, same partition: handled after both copies
        await eventually(lambda: pos_side.pool.fetchval("SELECT count(*) FROM posprobe.injections WHERE attempt = 99"),
                         30, "the probe to get past both copies")
        rows = await pos_side.pool.fetch("SELECT order_id, attempt FROM posprobe.injections WHERE attempt = 1")
        assert [(r["order_id"], r["attempt"]) for r in rows] == [(order.id, 1)]
        status = await second.pool.fetchval("SELECT status FROM orders.orders WHERE id = $1", order.id)
        assert status == "accepted"
    finally:
        await producer.stop()
        for runtime in reversed(runtimes):
            await runtime.stop()


async def test_an_accept_held_for_the_pos_is_answered_after_a_restart(own):
    """No POS answers; the service stops while the accept's reply is held: the restarted service's timer
    answers it (injection pending) instead of leaving the requester without an answer."""
    settings = own.settings(OrdersSettings, orders_accept_wait_ms=6_000)  # outlasts the first process's stop
    first = await started(bootstrap(settings))
    producer = kafka.make_producer(settings, client_id="test")
    await producer.start()
    runtimes = [first]
    try:
        normalized = NormalizedOrder(external_id="held-1", placed_at=utcnow(), fulfillment="pickup",
                                     items=[{"name": "Tea", "quantity": 1, "unit_price": "2.50"}],
                                     subtotal="2.50", tax="0", total="2.50", currency="USD").model_dump(mode="json")
        async with first.pool.acquire() as conn, conn.transaction():
            repository = OrderRepository(conn, TENANT)
            order = await repository.add(1, "custom", "held-1", normalized, normalized, utcnow(), None)
            await repository.record(order.id, None, Status.RECEIVED, Source.PLATFORM)
        command = Envelope.wrap(contract.AcceptExternalOrder(id=order.id), source="posint/gateway",
                                type=contract.ACCEPT_EXTERNAL_ORDER, subject=str(order.id), tenantid=TENANT,
                                replyto=topics.GATEWAY_REPLIES)
        await kafka.send(producer, topics.ORDERS_COMMANDS, command, 5)
        await eventually(lambda: first.pool.fetchval("SELECT count(*) = 1 FROM orders.reply_waits"), 30, "the held reply")
        await first.stop()  # the reply is still held: nothing answered yet
        assert await first_reply(own, command, expected=0) == []

        second = await started(bootstrap(settings))
        runtimes.append(second)
        [reply] = await first_reply(own, command)
        assert reply.data["status"] == 200
        assert (reply.data["body"]["data"]["status"], reply.data["body"]["data"]["injection_status"]) == ("accepted", "pending")
        assert await second.pool.fetchval("SELECT count(*) FROM orders.reply_waits") == 0
    finally:
        await producer.stop()
        for runtime in reversed(runtimes):
            await runtime.stop()


async def first_reply(own: Infra, command: Envelope, expected: int = 1) -> list[Envelope]:
    if expected == 0:
        try:
            return await read_topic(own.bootstrap_servers, topics.GATEWAY_REPLIES, 1, timeout_s=1,
                                    match=lambda e: e.causationid == command.id)
        except AssertionError:
            return []
    return await read_topic(own.bootstrap_servers, topics.GATEWAY_REPLIES, expected, timeout_s=30,
                            match=lambda e: e.causationid == command.id)
