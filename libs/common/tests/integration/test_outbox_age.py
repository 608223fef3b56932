"""The relay's age gauge: how long the oldest row not yet published has waited, so an outbox that
stops draining (broker refusing, rows in retry) is seen before anything is parked."""
from prometheus_client import REGISTRY

from posint_common.outbox import OutboxRelay
from posint_common.testing import eventually


def age(schema: str) -> float | None:
    return REGISTRY.get_sample_value("posint_outbox_oldest_age_seconds", {"schema": schema})


async def test_age_of_the_oldest_waiting_row_is_exported_and_falls_back_to_zero(infra, pool, producer, schema, topic):
    relay = OutboxRelay(dsn=infra.database_url, pool=pool, producer=producer, schema=schema, sweep_interval_s=0.1)
    await relay.start()
    try:
        assert age(schema) == 0.0, "served from the start, before any row"
        # A row that has waited 100 s and is held for a retry (not parked, not due): the relay cannot publish it.
        await pool.execute(
            "INSERT INTO outbox (id, topic, aggregateid, type, envelope, created_at, retry_at, attempts)"
            " VALUES ('stuck-1', $1, 'agg', 'posint.test.note.v1', '{}', now() - interval '100 seconds',"
            " now() + interval '1 hour', 1)", topic)
        await eventually(lambda: (age(schema) or 0) >= 100, 10, "the gauge to show the waiting row's age")
        # Parked rows have their own gauge and alert: they do not count here.
        await pool.execute("UPDATE outbox SET parked_at = now(), retry_at = NULL WHERE id = 'stuck-1'")
        await eventually(lambda: age(schema) == 0.0, 10, "the gauge to fall back once nothing waits")
    finally:
        await relay.stop()
