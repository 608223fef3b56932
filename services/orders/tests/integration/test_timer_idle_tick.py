"""The timer's idle tick is one statement: ``what_is_due`` says whether any received order is past
its accept_by and whether any held reply's time is up, and only then does a tick open the
transactions that expire and answer (with their locks). On a database of the test's own."""
from __future__ import annotations

from datetime import timedelta

from orders.adapters.repository import OrderRepository, what_is_due
from orders.domain.lifecycle import Status
from posint_common.envelope import utcnow


async def test_what_is_due_tells_due_orders_and_due_waits_apart(pool, add_order):
    add = add_order
    assert await what_is_due(pool) == (False, False)  # nothing at all
    await add(pool, "doordash", timedelta(minutes=5))
    await add(pool, "doordash", timedelta(seconds=-1), Status.ACCEPTED)  # past, but no longer received
    assert await what_is_due(pool) == (False, False)
    await add(pool, "ubereats", timedelta(seconds=-1))  # received and past its deadline
    assert await what_is_due(pool) == (True, False)
    async with pool.acquire() as conn:
        repository = OrderRepository(conn, "tenant-gauges")
        order_id = await conn.fetchval("SELECT id FROM orders ORDER BY id LIMIT 1")
        await repository.add_wait(order_id, "cmd-later", None, "gateway.replies", utcnow() + timedelta(minutes=1))
        assert await what_is_due(pool) == (True, False)  # a wait not yet up
        await repository.add_wait(order_id, "cmd-now", None, "gateway.replies", utcnow() - timedelta(seconds=1))
    assert await what_is_due(pool) == (True, True)
