"""Wires the webhook dispatcher: its schema, key ring, consumers and handlers."""
from pathlib import Path

from posint_common.contracts import topics
from posint_common.runtime import ServiceRuntime

from webhook_dispatcher import SCHEMA
from webhook_dispatcher.adapters.sender import Sender
from webhook_dispatcher.config import WebhooksSettings
from webhook_dispatcher.entrypoints.messages import EVENT_ROUTES, command_routes, query_routes
from webhook_dispatcher.service_layer.handlers import WebhookHandlers

MIGRATIONS = Path(__file__).resolve().parents[2] / "migrations"
NAME = "webhook-dispatcher"


async def bootstrap(settings: WebhooksSettings) -> ServiceRuntime:
    runtime = ServiceRuntime(name=NAME, schema=SCHEMA, settings=settings, migrations=MIGRATIONS)
    await runtime.start_core()
    sender = Sender(settings.egress)
    runtime.extra_stop.append(sender.close)
    handlers = WebhookHandlers(settings.key_ring, settings.egress, sender, settings.webhooks_allow_http)
    runtime.add_consumer("queries", (topics.WEBHOOKS_QUERIES,), query_routes(handlers), read_only=True)
    runtime.add_consumer("commands", (topics.WEBHOOKS_COMMANDS,), command_routes(handlers))
    runtime.add_consumer(
        "events", (topics.INTEGRATIONS_EVENTS, topics.ORDERS_EVENTS), EVENT_ROUTES, ignore_unknown_types=True
    )
    return runtime
