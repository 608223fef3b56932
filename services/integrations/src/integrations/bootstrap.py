"""Wires the integrations service: its schema, key ring, consumers and handlers."""
from pathlib import Path

from posint_common.contracts import topics
from posint_common.runtime import ServiceRuntime

from integrations import SCHEMA
from integrations.adapters.repository import sealed_key_ids
from integrations.adapters.vault import VARIABLE, KeyRing, KeyRingError
from integrations.config import IntegrationsSettings
from integrations.entrypoints.messages import command_routes, query_routes
from integrations.service_layer.handlers import IntegrationHandlers
from integrations.service_layer.inbound import InboundHandlers
from integrations.service_layer.secrets import Secrets

MIGRATIONS = Path(__file__).resolve().parents[2] / "migrations"
NAME = "integrations"


async def bootstrap(settings: IntegrationsSettings) -> ServiceRuntime:
    runtime = ServiceRuntime(name=NAME, schema=SCHEMA, settings=settings, migrations=MIGRATIONS)
    await runtime.start_core()
    try:
        await check_key_ring(runtime, settings.key_ring)
    except BaseException:
        await runtime.stop()
        raise
    secrets = Secrets(settings.key_ring)
    handlers = IntegrationHandlers(secrets, settings.public_base_url)
    runtime.add_consumer("queries", (topics.INTEGRATIONS_QUERIES,), query_routes(handlers), read_only=True)
    runtime.add_consumer("commands", (topics.INTEGRATIONS_COMMANDS,), command_routes(handlers, InboundHandlers(secrets)))
    return runtime


async def check_key_ring(runtime: ServiceRuntime, keys: KeyRing) -> None:
    """Refuse to start without a key for every stored secret: dropping a key too early would
    otherwise surface only when a secret is needed."""
    async with runtime.pool.acquire() as conn:
        used = await sealed_key_ids(conn)
    missing = {key_id: count for key_id, count in used.items() if key_id not in keys.key_ids}
    if missing:
        listed = ", ".join(f"'{key_id}' ({count} values)" for key_id, count in sorted(missing.items()))
        raise KeyRingError(f"{VARIABLE} lacks key id {listed} that sealed stored secrets; add the key back "
                           "(after the new one) and reseal with 'python -m integrations.keys reseal' before dropping it")
