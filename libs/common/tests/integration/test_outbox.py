import signal
import subprocess
import sys
from pathlib import Path

from pydantic import BaseModel

from posint_common import outbox
from posint_common.consumer import ConsumerLoop, Route
from posint_common.envelope import Envelope
from posint_common.kafka import make_consumer
from posint_common.outbox import OutboxRelay
from posint_common.testing import eventually, read_topic, unique

RELAY_CRASH_SCRIPT = Path(__file__).with_name("relay_crash.py")


class Numbered(BaseModel):
    n: int


def numbered(n: int) -> Envelope:
    return Envelope.wrap(Numbered(n=n), source="posint/test", type="posint.test.numbered.v1", subject=f"agg-{n % 7}")


async def queue(pool, schema, topic, count, start=0):
    async with pool.acquire() as conn, conn.transaction():
        for n in range(start, start + count):
            await outbox.add(conn, schema, topic, numbered(n))


async def test_relay_publishes_committed_rows_in_order_and_empties_the_outbox(infra, pool, producer, schema, topic):
    relay = OutboxRelay(dsn=infra.database_url, pool=pool, producer=producer, schema=schema, sweep_interval_s=30)
    await relay.start()
    try:
        await queue(pool, schema, topic, 20)  # NOTIFY on commit wakes the relay long before the sweep
        await eventually(lambda: _empty(pool), 10, "outbox to drain")
    finally:
        await relay.stop()
    received = await read_topic(infra.bootstrap_servers, topic, 20)
    by_key: dict[str, list[int]] = {}
    for envelope in received:
        by_key.setdefault(envelope.subject, []).append(envelope.data["n"])
    assert all(ns == sorted(ns) for ns in by_key.values())
    assert sorted(n for ns in by_key.values() for n in ns) == list(range(20))


async def test_rolled_back_transaction_publishes_nothing(infra, pool, producer, schema, topic):
    class Boom(Exception):
        pass

    try:
        async with pool.acquire() as conn, conn.transaction():
            await outbox.add(conn, schema, topic, numbered(1))
            raise Boom()
    except Boom:
        pass
    assert await pool.fetchval("SELECT count(*) FROM outbox") == 0


async def _empty(pool) -> bool:
    return await pool.fetchval("SELECT count(*) FROM outbox") == 0


async def test_relay_killed_mid_batch_loses_nothing_and_consumer_applies_each_once(infra, pool, producer, schema, topic):
    total, batch, crash_after = 60, 10, 25  # the kill lands inside the third batch
    await queue(pool, schema, topic, total)
    crashed = subprocess.run(
        [sys.executable, str(RELAY_CRASH_SCRIPT), infra.database_url, schema, infra.bootstrap_servers, str(batch), str(crash_after)],
        capture_output=True, text=True, timeout=120,
    )
    assert crashed.returncode == -signal.SIGKILL, crashed.stderr[-2000:]
    left = await pool.fetchval("SELECT count(*) FROM outbox")
    assert left == total - 20, "two whole batches were published and deleted before the kill"

    relay = OutboxRelay(dsn=infra.database_url, pool=pool, producer=producer, schema=schema)
    await relay.start()
    try:
        await eventually(lambda: _empty(pool), 15, "restarted relay to drain the outbox")
    finally:
        await relay.stop()
    delivered = await read_topic(infra.bootstrap_servers, topic, total + 5)
    assert len(delivered) == total + 5, "the 5 rows sent before the kill were sent again"

    async def apply(ctx, message: Numbered):
        await ctx.conn.execute("INSERT INTO effects (message_id, note) VALUES ($1, $2)", ctx.envelope.id, str(message.n))

    group = unique("test.effects")
    loop = ConsumerLoop(
        name=group, topics=(topic,), routes={"posint.test.numbered.v1": Route(Numbered, apply)},
        consumer=make_consumer(infra.settings(), topic, group_id=group, client_id=group),
        producer=producer, pool=pool, schema=schema, source="posint/test",
        pacer_settings={"busy_ms": 5, "idle_ms": 50, "window_ms": 1000},
    )
    await loop.start()
    try:
        await eventually(lambda: _at_least(pool, "SELECT count(*) FROM inbox", total), 60, "every message consumed")
    finally:
        await loop.stop()
    rows = await pool.fetch("SELECT note, count(*) AS applied FROM effects GROUP BY note")
    assert sorted(int(r["note"]) for r in rows) == list(range(total))
    assert all(r["applied"] == 1 for r in rows)


async def _at_least(pool, query, count) -> bool:
    return await pool.fetchval(query) >= count
