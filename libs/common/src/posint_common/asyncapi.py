"""The AsyncAPI 3 description of posint's topics, generated from the published contracts (topic
names, ``MESSAGE_MODELS`` and their pydantic models), so it cannot drift from the code:

    python -m posint_common.asyncapi > docs/asyncapi.yaml      (or: make asyncapi)

A test fails when docs/asyncapi.yaml is stale, when a registered message type or a topic has no
channel here, and when the document does not validate against the AsyncAPI 3.0.0 schema."""
from __future__ import annotations

import sys
from dataclasses import dataclass

import yaml
from pydantic.json_schema import models_json_schema

from posint_common.contracts import MESSAGE_MODELS, inbound, integrations, orders, pos, replies, tenants, topics, webhooks
from posint_common.envelope import CONTENT_TYPE_HEADER, HEADER_PREFIX, JSON_CONTENT_TYPE, SPECVERSION
from posint_common.kafka import DEFAULT_PARTITIONS

SCHEMAS = "#/components/schemas/"
KAFKA_BINDING_VERSION = "0.5.0"


@dataclass(frozen=True)
class Channel:
    topic: str
    owner: str  # the service that writes it
    consumers: tuple[str, ...]  # consumer groups (also the inbox key)
    key: str  # what the Kafka key (= ce_subject) is
    types: tuple[str, ...]  # message types carried
    kind: str  # command | query | event | reply | dead-letter


CHANNELS = (
    # No consumer group: each gateway reads all partitions (with KAFKA_ROLL_TOPICS, its own
    # gateway.replies.<instance>.g<ms> generations) and matches a reply by ce_causationid.
    Channel(topics.GATEWAY_REPLIES, "every service", (), "the request's subject, when it had one", (replies.REPLY,), "reply"),
    # The webhook dispatcher's own requests (get-integration, for an integration it has not learnt
    # from integrations.events yet): each dispatcher reads all partitions, or its own generations.
    Channel(topics.WEBHOOKS_REPLIES, "integrations", (), "the request's subject, when it had one", (replies.REPLY,), "reply"),
    Channel(topics.GATEWAY_EVENTS, "gateway", (), "tenant id", (tenants.TENANT_CREATED,), "event"),
    Channel(topics.INTEGRATIONS_QUERIES, "gateway, webhook-dispatcher (get-integration)", ("integrations.queries",), "integration id (get), none (list)",
            (integrations.LIST_INTEGRATIONS, integrations.GET_INTEGRATION, integrations.LIST_SYNC_RUNS,
             integrations.GET_SYNC_RUN), "query"),
    Channel(topics.INTEGRATIONS_COMMANDS, "gateway", ("integrations.commands",), "integration id",
            (integrations.CREATE_INTEGRATION, integrations.UPDATE_INTEGRATION, integrations.DELETE_INTEGRATION,
             inbound.RECEIVE_INBOUND_ORDER, integrations.START_SYNC), "command"),
    Channel(topics.INTEGRATIONS_EVENTS, "integrations", ("webhook-dispatcher.events", "orders.events"),
            "integration id; `<integration id>/<external id>` for order-received and order-cancelled",
            (integrations.INTEGRATION_CREATED, integrations.INTEGRATION_UPDATED, integrations.INTEGRATION_DEACTIVATED,
             inbound.ORDER_RECEIVED, orders.PLATFORM_ORDER_CANCELLED, integrations.SYNC_STARTED,
             integrations.SYNC_COMPLETED, integrations.SYNC_FAILED, integrations.ORDER_STATUS_PUSHED), "event"),
    Channel(topics.ORDERS_QUERIES, "gateway", ("orders.queries",), "order id (get), none (list)",
            (orders.LIST_EXTERNAL_ORDERS, orders.GET_EXTERNAL_ORDER), "query"),
    Channel(topics.ORDERS_COMMANDS, "gateway", ("orders.commands",), "order id",
            (orders.REJECT_EXTERNAL_ORDER, orders.ACCEPT_EXTERNAL_ORDER, orders.RETRY_INJECTION, orders.MARK_READY,
             orders.COMPLETE_EXTERNAL_ORDER, orders.CANCEL_EXTERNAL_ORDER), "command"),
    Channel(topics.ORDERS_EVENTS, "orders", ("webhook-dispatcher.events", "integrations.orders"), "order id",
            (orders.ORDER_CREATED, orders.ORDER_UPDATED, orders.ORDER_REJECTED, orders.ORDER_ACCEPTED,
             orders.ORDER_INJECTED, orders.ORDER_INJECTION_FAILED, orders.ORDER_READY, orders.ORDER_CANCELLED,
             orders.ORDER_EXPIRED, orders.ORDER_COMPLETED, orders.PAYMENT_COMPLETED), "event"),
    # The restaurant's POS reads pos.orders through its own consumer group (not a posint service's;
    # the reference POS in sandbox/ uses pos.reference) and answers on pos.order-events.
    Channel(topics.POS_ORDERS, "orders", (), "order id", (pos.INJECT_ORDER, pos.CANCEL_ORDER), "command"),
    Channel(topics.POS_ORDER_EVENTS, "the restaurant's POS", ("orders.pos",), "order id",
            (pos.ORDER_INJECTED, pos.ORDER_INJECTION_FAILED, pos.ORDER_PREPARING, pos.ORDER_READY,
             pos.ORDER_COMPLETED, pos.ORDER_CANCELLED, pos.PAYMENT_COMPLETED), "event"),
    Channel(topics.WEBHOOKS_QUERIES, "gateway", ("webhook-dispatcher.queries",), "webhook endpoint id (get, deliveries), none (list)",
            (webhooks.LIST_WEBHOOKS, webhooks.GET_WEBHOOK, webhooks.LIST_DELIVERIES), "query"),
    Channel(topics.WEBHOOKS_COMMANDS, "gateway", ("webhook-dispatcher.commands",), "webhook endpoint id (none: create)",
            (webhooks.CREATE_WEBHOOK, webhooks.UPDATE_WEBHOOK, webhooks.DELETE_WEBHOOK, webhooks.TEST_WEBHOOK,
             webhooks.ROTATE_SECRET, webhooks.RETRY_DELIVERY, webhooks.RECOVER_WEBHOOK), "command"),
    Channel(topics.WEBHOOKS_EVENTS, "webhook-dispatcher", (), "webhook endpoint id", (), "event"),
)

EXTENSIONS = {
    "correlationid": "the HTTP request id that started the flow",
    "causationid": "ce_id of the message that caused this one",
    "tenantid": "the tenant the message belongs to",
    "replyto": "commands and queries: the topic to send the reply to",
    "posintsealed": "the data is sealed ({\"sealed\": base64}, AES-256-GCM) with this key id of TRANSPORT_KEYS:"
                    " messages that carry secrets and the replies to them",
}


def channels() -> tuple[Channel, ...]:
    """The declared channels plus a dead-letter channel for every consumed topic."""
    dead_letters = tuple(
        Channel(topics.dead_letter(topic), "the consumer that gave up", (), "the original record's key",
                (replies.DEAD_LETTER,), "dead-letter")
        for topic in topics.CONSUMED
    )
    return CHANNELS + dead_letters


def _headers_schema() -> dict:
    properties = {
        f"{HEADER_PREFIX}id": {"type": "string", "description": "unique per source; with ce_source the deduplication key"},
        f"{HEADER_PREFIX}source": {"type": "string", "pattern": "^posint/", "description": "posint/<service>"},
        f"{HEADER_PREFIX}type": {"type": "string", "description": "the message type (versioned: .vN)"},
        f"{HEADER_PREFIX}specversion": {"type": "string", "const": SPECVERSION},
        f"{HEADER_PREFIX}time": {"type": "string", "format": "date-time"},
        f"{HEADER_PREFIX}subject": {"type": "string", "description": "aggregate id, also the Kafka key"},
        **{f"{HEADER_PREFIX}{name}": {"type": "string", "description": text} for name, text in EXTENSIONS.items()},
        CONTENT_TYPE_HEADER: {"type": "string", "const": JSON_CONTENT_TYPE},
    }
    for schema in properties.values():
        schema["maxLength"] = 256
    required = [f"{HEADER_PREFIX}{name}" for name in ("id", "source", "type", "specversion", "time")]
    return {
        "type": "object",
        "description": "CloudEvents 1.0, Kafka protocol binding, binary mode: attributes in headers, the "
                       "JSON payload as the value. Each of these headers at most once, non-empty UTF-8 "
                       "without control characters; other headers are ignored.",
        "properties": properties,
        "required": [*required, CONTENT_TYPE_HEADER],
    }


def _message_id(message_type: str) -> str:
    return message_type


def document() -> dict:
    all_channels = channels()
    models = sorted({model for model in MESSAGE_MODELS.values()}, key=lambda m: (m.__module__, m.__qualname__))
    keyed, top = models_json_schema([(model, "validation") for model in models], ref_template=SCHEMAS + "{model}")
    schemas = {"CloudEventHeaders": _headers_schema(), **dict(sorted(top.get("$defs", {}).items()))}

    messages = {}
    for message_type, model in sorted(MESSAGE_MODELS.items()):
        messages[_message_id(message_type)] = {
            "name": message_type,
            "title": model.__name__,
            "summary": (model.__doc__ or model.__name__).strip().splitlines()[0],
            "contentType": JSON_CONTENT_TYPE,
            "headers": {"allOf": [{"$ref": SCHEMAS + "CloudEventHeaders"},
                                  {"type": "object", "properties": {f"{HEADER_PREFIX}type": {"const": message_type}}}]},
            "payload": keyed[(model, "validation")],
            "correlationId": {"location": f"$message.header#/{HEADER_PREFIX}correlationid"},
            "bindings": {"kafka": {"key": {"type": "string", "description": "ce_subject"},
                                   "bindingVersion": KAFKA_BINDING_VERSION}},
        }

    channel_docs, operations = {}, {}
    for channel in all_channels:
        consumers = ", ".join(f"`{group}`" for group in channel.consumers) or (
            "every requesting instance, without a consumer group, matching ce_causationid" if channel.kind == "reply" else "none yet")
        channel_docs[channel.topic] = {
            "address": channel.topic,
            "title": channel.topic,
            "description": f"{channel.kind.capitalize()} topic. Written by {channel.owner}; read by {consumers}. "
                           f"Key: {channel.key}.",
            "messages": {_message_id(t): {"$ref": f"#/components/messages/{_message_id(t)}"} for t in channel.types},
            "bindings": {"kafka": {"topic": channel.topic, "partitions": DEFAULT_PARTITIONS,
                                   "bindingVersion": KAFKA_BINDING_VERSION}},
            "x-owner": channel.owner,
            "x-consumer-groups": list(channel.consumers),
        }
        refs = [{"$ref": f"#/channels/{channel.topic}/messages/{_message_id(t)}"} for t in channel.types]
        send = {"action": "send", "channel": {"$ref": f"#/channels/{channel.topic}"},
                "summary": f"{channel.owner} writes {channel.topic}", "messages": refs}
        if channel.kind in ("command", "query"):
            send["reply"] = {"address": {"location": f"$message.header#/{HEADER_PREFIX}replyto",
                                         "description": "the requester's reply topic (gateway.replies, webhooks.replies, or a generation of one)"},
                             "channel": {"$ref": f"#/channels/{topics.GATEWAY_REPLIES}"},
                             "messages": [{"$ref": f"#/channels/{topics.GATEWAY_REPLIES}/messages/{replies.REPLY}"}]}
        operations[f"{channel.topic}.send"] = send
        for group in channel.consumers:
            operations[f"{channel.topic}.receive.{group}"] = {
                "action": "receive", "channel": {"$ref": f"#/channels/{channel.topic}"},
                "summary": f"consumer group {group} reads {channel.topic}", "messages": refs,
            }

    return {
        "asyncapi": "3.0.0",
        "info": {
            "title": "posint messages",
            "version": "1.0.0",
            "description": (
                "Every Kafka topic of posint, its owner, key and messages. Topics are a public interface: "
                "commands go to the receiving service's topic, events to the emitter's, queries to their own; "
                "replies to gateway.replies; poison messages to <topic>.dlq. A change to a payload is a new "
                ".vN message type, never an edit. Generated by `python -m posint_common.asyncapi`."
            ),
        },
        "defaultContentType": JSON_CONTENT_TYPE,
        "servers": {
            "kafka": {"host": "kafka:9092", "protocol": "kafka",
                      "description": "docker-compose's broker; any Kafka cluster in production"},
        },
        "channels": channel_docs,
        "operations": operations,
        "components": {"schemas": schemas, "messages": messages},
    }


def render() -> str:
    header = "# Generated by `python -m posint_common.asyncapi` (make asyncapi) from posint_common.contracts; do not edit.\n"
    return header + yaml.safe_dump(document(), sort_keys=False, allow_unicode=True, width=100)


def main() -> int:
    sys.stdout.write(render())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
