"""Wires the webhook dispatcher: its schema, consumers and handlers."""
from pathlib import Path

from posint_common.contracts import topics
from posint_common.runtime import ServiceRuntime
from posint_common.settings import ServiceSettings

from webhook_dispatcher import SCHEMA
from webhook_dispatcher.entrypoints.messages import COMMAND_ROUTES, EVENT_ROUTES

MIGRATIONS = Path(__file__).resolve().parents[2] / "migrations"
NAME = "webhook-dispatcher"


async def bootstrap(settings: ServiceSettings) -> ServiceRuntime:
    runtime = ServiceRuntime(name=NAME, schema=SCHEMA, settings=settings, migrations=MIGRATIONS)
    await runtime.start_core()
    runtime.add_consumer("commands", (topics.WEBHOOKS_COMMANDS,), COMMAND_ROUTES)
    runtime.add_consumer(
        "events", (topics.INTEGRATIONS_EVENTS, topics.ORDERS_EVENTS), EVENT_ROUTES, ignore_unknown_types=True
    )
    return runtime
