"""Wires the integrations service: its schema, key ring, consumers and handlers."""
from pathlib import Path

from posint_common.contracts import topics
from posint_common.egress import EgressPolicy
from posint_common.runtime import ServiceRuntime

from integrations import SCHEMA
from integrations.adapters.repository import sealed_key_ids
from integrations.adapters.vault import VARIABLE, KeyRing, KeyRingError
from integrations.config import IntegrationsSettings
from integrations.entrypoints.messages import command_routes, order_event_routes, query_routes
from integrations.entrypoints.push_worker import PushWorker
from integrations.entrypoints.sync_worker import SyncWorker
from integrations.service_layer.handlers import IntegrationHandlers
from integrations.service_layer.inbound import InboundHandlers
from integrations.service_layer.clients import Clients
from integrations.service_layer.pushes import OrderEventHandlers, Pusher, PushSettings
from integrations.service_layer.secrets import Secrets
from integrations.service_layer.sync import SyncRunner

MIGRATIONS = Path(__file__).resolve().parents[2] / "migrations"
NAME = "integrations"


async def bootstrap(settings: IntegrationsSettings) -> ServiceRuntime:
    runtime = ServiceRuntime(name=NAME, schema=SCHEMA, settings=settings, migrations=MIGRATIONS, carries_secrets=True)
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
    clients = Clients(runtime.pool, secrets, EgressPolicy.from_settings(settings), settings.client_options)
    runtime.extra_stop.append(clients.close)  # first in, last out (extra_stop runs in reverse): after the workers
    add_sync_worker(runtime, settings, clients)
    push_settings = PushSettings(
        status_deadline_s=settings.status_push_deadline_s, sale_max_attempts=settings.sale_push_max_attempts,
        retry_initial_s=settings.push_retry_initial_ms / 1000, retry_max_s=settings.push_retry_max_s,
    )
    runtime.add_consumer("orders", (topics.ORDERS_EVENTS,), order_event_routes(OrderEventHandlers(push_settings)),
                         ignore_unknown_types=True)
    add_push_worker(runtime, settings, Pusher(runtime.schema, runtime.source, clients, push_settings))
    return runtime


def add_push_worker(runtime: ServiceRuntime, settings: IntegrationsSettings, pusher: Pusher) -> PushWorker:
    # A lease outlasts the longest call (all of the client's tries), so a push is never made twice at once.
    worker = PushWorker(runtime.pool, pusher, poll_interval_s=settings.push_poll_interval_ms / 1000,
                        batch=settings.push_batch, lease_s=settings.provider_deadline_s + 30)

    async def start() -> None:
        await worker.start()
        runtime.supervise(worker.task)

    runtime.extra_start.append(start)
    runtime.extra_stop.append(worker.stop)
    runtime.push_worker = worker  # for tests and operators
    return worker


def add_sync_worker(runtime: ServiceRuntime, settings: IntegrationsSettings, clients: Clients) -> SyncWorker:
    runner = SyncRunner(runtime.schema, runtime.source, clients, settings.sync_fetch_timeout_s)
    worker = SyncWorker(runtime.pool, runner, poll_interval_s=settings.sync_poll_interval_ms / 1000,
                        max_concurrent=settings.sync_max_concurrent)

    async def start() -> None:
        await worker.start()
        runtime.supervise(worker.task)

    runtime.extra_start.append(start)
    runtime.extra_stop.append(worker.stop)
    runtime.sync_worker = worker  # for tests and operators
    return worker


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
