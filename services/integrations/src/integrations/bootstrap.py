"""Wires the integrations service: its schema, consumers and handlers."""
from pathlib import Path

from posint_common.contracts import topics
from posint_common.runtime import ServiceRuntime

from integrations import SCHEMA
from posint_common.settings import ServiceSettings
from integrations.entrypoints.messages import COMMAND_ROUTES, QUERY_ROUTES

MIGRATIONS = Path(__file__).resolve().parents[2] / "migrations"
NAME = "integrations"


async def bootstrap(settings: ServiceSettings) -> ServiceRuntime:
    runtime = ServiceRuntime(name=NAME, schema=SCHEMA, settings=settings, migrations=MIGRATIONS)
    await runtime.start_core()
    runtime.add_consumer("queries", (topics.INTEGRATIONS_QUERIES,), QUERY_ROUTES, read_only=True)
    runtime.add_consumer("commands", (topics.INTEGRATIONS_COMMANDS,), COMMAND_ROUTES)
    return runtime
