"""The relay's batches are bounded in bytes as well as rows: large records (orders up to a few MiB)
never make it hold hundreds of MB, and a cut batch is followed at once by the next one."""
from pydantic import BaseModel

from posint_common import outbox
from posint_common.envelope import Envelope
from posint_common.outbox import OutboxRelay
from posint_common.testing import eventually, read_topic

ROW_BYTES = 100_000


class Padded(BaseModel):
    n: int
    pad: str


def padded(n: int) -> Envelope:
    return Envelope.wrap(Padded(n=n, pad="x" * ROW_BYTES), source="posint/test", type="posint.test.padded.v1",
                         subject=f"agg-{n % 3}")


async def queue(pool, schema, topic, count):
    async with pool.acquire() as conn, conn.transaction():
        await outbox.add_many(conn, schema, [(topic, padded(n)) for n in range(count)])


async def test_a_batch_stops_at_its_byte_budget_but_always_takes_one_row(infra, pool, producer, schema, topic):
    await queue(pool, schema, topic, 10)
    relay = OutboxRelay(dsn=infra.database_url, pool=pool, producer=producer, schema=schema, batch_bytes=3 * ROW_BYTES)
    assert await relay.publish_batch() == 3  # the 4th row would start past 300 kB: left for the next batch
    tiny = OutboxRelay(dsn=infra.database_url, pool=pool, producer=producer, schema=schema, batch_bytes=1)
    assert await tiny.publish_batch() == 1  # a row larger than the budget still goes, alone
    assert await pool.fetchval("SELECT count(*) FROM outbox") == 6


async def test_a_cut_batch_is_followed_at_once_and_order_is_kept(infra, pool, producer, schema, topic):
    relay = OutboxRelay(dsn=infra.database_url, pool=pool, producer=producer, schema=schema,
                        batch_bytes=2 * ROW_BYTES, sweep_interval_s=60)  # only the NOTIFY wakes it
    await relay.start()
    try:
        await queue(pool, schema, topic, 9)
        await eventually(lambda: _empty(pool), 10, "outbox to drain in cut batches after one wake-up")
    finally:
        await relay.stop()
    received = await read_topic(infra.bootstrap_servers, topic, 9)
    by_key: dict[str, list[int]] = {}
    for envelope in received:
        by_key.setdefault(envelope.subject, []).append(envelope.data["n"])
    assert by_key == {f"agg-{k}": [n for n in range(9) if n % 3 == k] for k in range(3)}


async def _empty(pool) -> bool:
    return await pool.fetchval("SELECT count(*) FROM outbox") == 0
