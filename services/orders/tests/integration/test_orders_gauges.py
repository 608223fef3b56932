"""The gauges of received orders waiting for a restaurant, from the timer's one query: per provider,
all received orders and those whose accept_by is near (passed ones not yet expired included);
accepted, expired and other orders not counted; a provider that has none drops to 0. On a database
of the test's own, so the counts are exact."""
from __future__ import annotations

from datetime import timedelta

from prometheus_client import REGISTRY

from orders.domain.lifecycle import Status
from orders.service_layer import timer


def gauges(provider: str) -> tuple[float | None, float | None]:
    return (REGISTRY.get_sample_value("posint_orders_unaccepted", {"provider": provider}),
            REGISTRY.get_sample_value("posint_orders_unaccepted_near_deadline", {"provider": provider}))


async def test_received_orders_and_those_near_their_deadline_are_counted_per_provider(pool, add_order):
    add = add_order
    await add(pool, "doordash", timedelta(seconds=30))    # near
    await add(pool, "doordash", timedelta(seconds=-5))    # passed, the timer has not expired it yet: near
    await add(pool, "doordash", timedelta(minutes=8))     # not near
    await add(pool, "ubereats", timedelta(minutes=11))
    await add(pool, "doordash", timedelta(seconds=10), Status.ACCEPTED)  # not waiting any more
    await add(pool, "doordash", timedelta(seconds=-60), Status.EXPIRED)
    await add(pool, "someday", timedelta(seconds=1))      # an unknown provider: "other", never its own label

    await timer.count_unaccepted(pool, near_s=120)
    assert gauges("doordash") == (3, 2)
    assert gauges("ubereats") == (1, 0)
    assert gauges("grubhub") == (0, 0)
    assert gauges("other") == (1, 1)
    assert gauges("someday") == (None, None)

    await timer.count_unaccepted(pool, near_s=1000)  # the threshold is the setting's
    assert gauges("ubereats") == (1, 1)

    async with pool.acquire() as conn:
        await conn.execute("UPDATE orders SET status = 'cancelled' WHERE provider = 'ubereats'")
    await timer.count_unaccepted(pool, near_s=120)
    assert gauges("ubereats") == (0, 0)  # a provider with none left drops to 0
