"""Wires the orders service: its schema, consumers and handlers."""
from pathlib import Path

from posint_common.contracts import topics
from posint_common.runtime import ServiceRuntime
from posint_common.settings import ServiceSettings

from orders import SCHEMA
from orders.entrypoints.messages import COMMAND_ROUTES, EVENT_ROUTES, QUERY_ROUTES

MIGRATIONS = Path(__file__).resolve().parents[2] / "migrations"
NAME = "orders"


async def bootstrap(settings: ServiceSettings) -> ServiceRuntime:
    runtime = ServiceRuntime(name=NAME, schema=SCHEMA, settings=settings, migrations=MIGRATIONS)
    await runtime.start_core()
    runtime.add_consumer("queries", (topics.ORDERS_QUERIES,), QUERY_ROUTES, read_only=True)
    runtime.add_consumer("commands", (topics.ORDERS_COMMANDS,), COMMAND_ROUTES)
    runtime.add_consumer("events", (topics.INTEGRATIONS_EVENTS,), EVENT_ROUTES, ignore_unknown_types=True)
    return runtime
