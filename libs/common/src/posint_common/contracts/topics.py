"""Every Kafka topic posint uses. Commands go to the receiving service's topic, events to the
emitter's, queries to their own topic so reads never queue behind writes."""

GATEWAY_REPLIES = "gateway.replies"
WEBHOOKS_REPLIES = "webhooks.replies"  # the dispatcher's own requests (get-integration) are answered here
GATEWAY_EVENTS = "gateway.events"
INTEGRATIONS_COMMANDS = "integrations.commands"
INTEGRATIONS_QUERIES = "integrations.queries"
INTEGRATIONS_EVENTS = "integrations.events"
ORDERS_COMMANDS = "orders.commands"
ORDERS_QUERIES = "orders.queries"
ORDERS_EVENTS = "orders.events"
WEBHOOKS_COMMANDS = "webhooks.commands"
WEBHOOKS_QUERIES = "webhooks.queries"
WEBHOOKS_EVENTS = "webhooks.events"
POS_ORDERS = "pos.orders"  # orders -> the restaurant's POS: inject-order, cancel-order (posint_common.contracts.pos)
POS_ORDER_EVENTS = "pos.order-events"  # the POS's answers: injected, injection failed, preparing, ready...

# The consumer group that answers what the gateway sends to each topic. When a reply is late, the
# gateway asks whether that group got past the request at all: if not, the service is down (503).
ANSWERED_BY = {
    INTEGRATIONS_QUERIES: "integrations.queries",
    INTEGRATIONS_COMMANDS: "integrations.commands",
    ORDERS_QUERIES: "orders.queries",
    ORDERS_COMMANDS: "orders.commands",
    WEBHOOKS_COMMANDS: "webhook-dispatcher.commands",
    WEBHOOKS_QUERIES: "webhook-dispatcher.queries",
}

CONSUMED = (
    GATEWAY_EVENTS,
    INTEGRATIONS_COMMANDS,
    INTEGRATIONS_QUERIES,
    INTEGRATIONS_EVENTS,
    ORDERS_COMMANDS,
    ORDERS_QUERIES,
    ORDERS_EVENTS,
    WEBHOOKS_COMMANDS,
    WEBHOOKS_QUERIES,
    WEBHOOKS_EVENTS,
    POS_ORDERS,
    POS_ORDER_EVENTS,
)


def dead_letter(topic: str) -> str:
    """Poison messages from ``topic`` land here with the error that stopped them."""
    return f"{topic}.dlq"


ALL = (GATEWAY_REPLIES, WEBHOOKS_REPLIES, *CONSUMED, *(dead_letter(topic) for topic in CONSUMED))
