"""outbox.add_many: several rows and the relay's NOTIFY in one statement, in the given order."""
import asyncio

import asyncpg
from pydantic import BaseModel

from posint_common import outbox
from posint_common.envelope import Envelope


class Numbered(BaseModel):
    n: int


def numbered(n: int) -> Envelope:
    return Envelope.wrap(Numbered(n=n), source="posint/test", type="posint.test.numbered.v1",
                         subject=None if n == 3 else f"agg-{n}")


async def test_rows_keep_their_order_and_fields(pool, schema, topic):
    rows = [(f"{topic}-{n % 2}", numbered(n)) for n in range(6)]
    async with pool.acquire() as conn, conn.transaction():
        await outbox.add_many(conn, schema, rows)
    stored = await pool.fetch("SELECT id, topic, aggregateid, type, envelope::text AS envelope FROM outbox ORDER BY seq")
    assert [(r["id"], r["topic"], r["aggregateid"], r["type"]) for r in stored] == [
        (e.id, t, e.subject, e.type) for t, e in rows]
    assert [Envelope.model_validate_json(r["envelope"]).data["n"] for r in stored] == list(range(6))


async def test_one_notify_wakes_the_relay_at_commit(infra, pool, schema, topic):
    woken: asyncio.Queue = asyncio.Queue()
    listener = await asyncpg.connect(infra.database_url)
    try:
        await listener.add_listener(outbox.channel(schema), lambda *args: woken.put_nowait(args[-1]))
        async with pool.acquire() as conn, conn.transaction():
            await outbox.add_many(conn, schema, [(topic, numbered(n)) for n in range(3)])
            assert woken.empty()
        assert await asyncio.wait_for(woken.get(), 5) == ""
    finally:
        await listener.close()
