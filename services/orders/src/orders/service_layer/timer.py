"""The timer: acceptance deadlines and held accept replies, both kept in Postgres.

Each tick first asks whether anything is due at all (one statement, no transaction: the idle
service's cost), then expires the received orders past ``accept_by`` (locked with SKIP LOCKED: an accept
holding the row decides it there, and ``expire_if_due`` makes that accept lose to a passed deadline
too, so exactly one wins) and answers the accept waits whose time is up with the order as it
stands (injection ``pending``). Nothing lives in memory: after a restart the first tick fires
whatever fell due meanwhile. About once a second it also counts the received orders (all, and those
whose ``accept_by`` is near) for the gauges: one query on the partial index of received orders."""
from __future__ import annotations

import asyncio
import time

import asyncpg

from posint_common.consumer import MessageContext
from posint_common.contracts import orders as contract
from posint_common.envelope import Envelope
from posint_common.log import get_logger

from orders.adapters import metrics
from orders.adapters.repository import OrderRepository, due_orders, due_waits, unaccepted, what_is_due
from orders.service_layer.handlers import expire_if_due
from orders.service_layer.replies import document, send_held

log = get_logger(__name__)

BATCH = 100
GAUGE_INTERVAL_S = 1.0
PENDING = contract.InjectionStatus.PENDING.value
TICK = "posint.orders.timer-tick.v1"  # the cause of what the timer emits; never sent


def _context(conn: asyncpg.Connection, schema: str, source: str, tenant_id: str) -> MessageContext:
    return MessageContext(envelope=Envelope(source=source, type=TICK, tenantid=tenant_id), conn=conn,
                          schema=schema, source=source)


async def expire_due(pool: asyncpg.Pool, schema: str, source: str) -> int:
    with metrics.after_success():  # counted once committed
        async with pool.acquire() as conn, conn.transaction():
            rows = await due_orders(conn, BATCH)
            for row in rows:
                repository = OrderRepository(conn, row["tenant_id"])
                order = await repository.get(row["id"])
                await expire_if_due(_context(conn, schema, source, row["tenant_id"]), repository, order)
    return len(rows)


async def answer_due(pool: asyncpg.Pool, schema: str, source: str) -> int:
    with metrics.after_success():
        async with pool.acquire() as conn, conn.transaction():
            waits = await due_waits(conn, BATCH)
            for wait in waits:
                repository = OrderRepository(conn, wait["tenant_id"])
                order = await repository.get(wait["order_id"])
                if order.injection_status == PENDING:
                    metrics.injection(order.provider, PENDING)
                await send_held(conn, schema, source, wait["tenant_id"], wait, await document(repository, order))
    return len(waits)


async def count_unaccepted(pool: asyncpg.Pool, near_s: float) -> None:
    """The gauges of received orders, per provider: all of them, and those near their accept_by."""
    metrics.set_unaccepted(await unaccepted(pool, near_s))


async def run(pool: asyncpg.Pool, schema: str, source: str, interval_s: float, near_s: float = 120) -> None:
    """Forever: a failed tick (Postgres away) is logged and tried again next period."""
    counted_at = 0.0
    while True:
        try:
            orders_due, waits_due = await what_is_due(pool)  # an idle tick: one query, no transaction
            while orders_due and await expire_due(pool, schema, source) == BATCH:
                pass
            while waits_due and await answer_due(pool, schema, source) == BATCH:
                pass
            if time.monotonic() - counted_at >= GAUGE_INTERVAL_S:
                await count_unaccepted(pool, near_s)
                counted_at = time.monotonic()
        except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError, TimeoutError) as error:
            log.error("timer_tick_failed", error=repr(error))
        await asyncio.sleep(interval_s)
