"""Wires the webhook dispatcher: its schema, key ring, consumers, handlers, delivery workers, and the
requester it asks the integrations service with."""
from pathlib import Path

from posint_common.contracts import topics
from posint_common.requests import Requester
from posint_common.runtime import ServiceRuntime

from webhook_dispatcher import SCHEMA
from webhook_dispatcher.adapters.integrations import IntegrationDirectory, reply_timeout_s
from webhook_dispatcher.adapters.retention import message_pruner
from webhook_dispatcher.adapters.sender import Sender
from webhook_dispatcher.config import WebhooksSettings
from webhook_dispatcher.domain.retry import RetryPolicy
from webhook_dispatcher.entrypoints.messages import EVENT_ROUTES, command_routes, query_routes
from webhook_dispatcher.service_layer.delivery import Deliverer
from webhook_dispatcher.service_layer.handlers import WebhookHandlers

MIGRATIONS = Path(__file__).resolve().parents[2] / "migrations"
NAME = "webhook-dispatcher"


def retry_policy(settings: WebhooksSettings) -> RetryPolicy:
    return RetryPolicy(settings.retry_schedule, settings.webhooks_retry_jitter, settings.webhooks_retry_after_max_s,
                       settings.webhooks_disable_after_s)


def deliverer(settings: WebhooksSettings, pool, sender: Sender) -> Deliverer:
    return Deliverer(
        pool=pool, dsn=settings.database_url, keys=settings.key_ring, sender=sender, policy=retry_policy(settings),
        max_in_flight=settings.webhooks_max_in_flight, max_retries_in_flight=settings.webhooks_max_retries_in_flight,
        per_endpoint=settings.webhooks_max_in_flight_per_endpoint,
        poll_interval_s=settings.webhooks_poll_interval_ms / 1000,
        lease_s=settings.webhooks_attempt_timeout_s + settings.webhooks_lease_margin_s,
    )


def sender_of(settings: WebhooksSettings) -> Sender:
    return Sender(settings.egress, connect_timeout_s=settings.webhooks_connect_timeout_s,
                  total_timeout_s=settings.webhooks_attempt_timeout_s)


async def start_requester(settings: WebhooksSettings, runtime: ServiceRuntime) -> Requester:
    """Before the consumers: a command may need it as soon as they run."""
    bound_s = settings.webhooks_integration_lookup_timeout_ms / 1000
    requester = Requester(settings, runtime.producer, source=runtime.source, reply_topic=topics.WEBHOOKS_REPLIES,
                          client_id=f"{NAME}.replies", reply_timeout_s=reply_timeout_s(bound_s), max_pending=1_000)
    await requester.start()
    for task in requester.tasks:
        runtime.supervise(task)
    runtime.extra_stop.append(requester.stop)
    runtime.extra_ready.append(lambda: requester.ready)
    return requester


async def bootstrap(settings: WebhooksSettings) -> ServiceRuntime:
    runtime = ServiceRuntime(name=NAME, schema=SCHEMA, settings=settings, migrations=MIGRATIONS, carries_secrets=True)
    await runtime.start_core()
    requester = await start_requester(settings, runtime)
    sender = sender_of(settings)
    runtime.extra_stop.append(sender.close)
    directory = IntegrationDirectory(requester, settings.webhooks_integration_lookup_timeout_ms / 1000)
    handlers = WebhookHandlers(settings.key_ring, settings.egress, sender, settings.webhooks_allow_http,
                               settings.webhooks_rotation_overlap_s, integrations=directory)
    runtime.add_consumer("queries", (topics.WEBHOOKS_QUERIES,), query_routes(handlers), read_only=True)
    runtime.add_consumer("commands", (topics.WEBHOOKS_COMMANDS,), command_routes(handlers))
    runtime.add_consumer(
        "events", (topics.INTEGRATIONS_EVENTS, topics.ORDERS_EVENTS), EVENT_ROUTES, ignore_unknown_types=True
    )
    delivery = deliverer(settings, runtime.pool, sender)
    runtime.delivery = delivery  # tests reach the running workers through it

    pruner = message_pruner(runtime.pool, SCHEMA, retention_hours=settings.webhooks_retention_hours,
                            failed_retention_hours=settings.webhooks_failed_retention_hours,
                            interval_s=settings.webhooks_prune_interval_s)

    async def start_delivery() -> None:
        for task in await delivery.start():
            runtime.supervise(task)
        await pruner.start()
        runtime.supervise(pruner.task)

    runtime.extra_start.append(start_delivery)
    runtime.extra_stop.append(delivery.stop)
    runtime.extra_stop.append(pruner.stop)
    return runtime
