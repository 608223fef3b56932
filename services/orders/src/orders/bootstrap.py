"""Wires the orders service: its schema, consumers, handlers and the timer."""
import asyncio
from pathlib import Path

from posint_common.contracts import topics
from posint_common.runtime import ServiceRuntime
from posint_common.settings import ServiceSettings

from orders import SCHEMA
from orders.config import orders_settings
from orders.entrypoints.messages import EVENT_ROUTES, POS_ROUTES, QUERY_ROUTES, command_routes
from orders.service_layer import timer

MIGRATIONS = Path(__file__).resolve().parents[2] / "migrations"
NAME = "orders"


async def bootstrap(settings: ServiceSettings) -> ServiceRuntime:
    settings = orders_settings(settings)
    runtime = ServiceRuntime(name=NAME, schema=SCHEMA, settings=settings, migrations=MIGRATIONS)
    await runtime.start_core()
    runtime.add_consumer("queries", (topics.ORDERS_QUERIES,), QUERY_ROUTES, read_only=True)
    runtime.add_consumer("commands", (topics.ORDERS_COMMANDS,), command_routes(settings))
    runtime.add_consumer("events", (topics.INTEGRATIONS_EVENTS,), EVENT_ROUTES, ignore_unknown_types=True)
    runtime.add_consumer("pos", (topics.POS_ORDER_EVENTS,), POS_ROUTES)

    async def start_timer() -> None:
        task = asyncio.create_task(
            timer.run(runtime.pool, SCHEMA, runtime.source, settings.orders_timer_interval_ms / 1000,
                      settings.orders_near_deadline_s), name="orders-timer")
        runtime.tasks.append(task)
        runtime.supervise(task)

    runtime.extra_start.append(start_timer)
    return runtime
