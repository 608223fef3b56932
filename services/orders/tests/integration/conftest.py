"""An orders database of the test's own (exact counts), and a way to add orders to it."""
from __future__ import annotations

import os
from datetime import timedelta
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import pytest

from orders import SCHEMA
from orders.adapters.repository import OrderRepository
from orders.bootstrap import MIGRATIONS
from orders.domain.lifecycle import Status
from posint_common import db
from posint_common.contracts.inbound import NormalizedOrder
from posint_common.envelope import utcnow
from posint_common.testing import unique


@pytest.fixture
async def pool(_embedded):
    database = f"orders_gauges_{os.getpid()}_{os.urandom(4).hex()}"
    admin = await asyncpg.connect(_embedded.database_url)
    await admin.execute(f'CREATE DATABASE "{database}"')
    dsn = urlunsplit(urlsplit(_embedded.database_url)._replace(path="/" + database))
    try:
        await db.migrate(dsn, SCHEMA, MIGRATIONS)
        pool = await db.create_pool(dsn, SCHEMA, max_size=2)
        yield pool
        await pool.close()
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
        await admin.close()


async def _add(pool, provider: str, accept_in: timedelta, status: Status = Status.RECEIVED) -> None:
    normalized = NormalizedOrder(external_id=unique("g"), placed_at=utcnow(), fulfillment="pickup",
                                 items=[{"name": "Tea", "quantity": 1, "unit_price": "2.50"}],
                                 subtotal="2.50", tax="0", total="2.50", currency="USD").model_dump(mode="json")
    async with pool.acquire() as conn:
        repository = OrderRepository(conn, "tenant-gauges")
        order = await repository.add(1, provider, normalized["external_id"], normalized, {}, utcnow(), utcnow() + accept_in)
        if status is not Status.RECEIVED:
            await repository.set_status(order.id, status)


@pytest.fixture
def add_order():
    """``await add_order(pool, provider, accept_in, status=RECEIVED)``: one order of tenant ``tenant-gauges``."""
    return _add
