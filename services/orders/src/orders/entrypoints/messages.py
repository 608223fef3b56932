"""Message type -> handler, per consumer."""
from posint_common.consumer import Route
from posint_common.contracts import inbound, orders as contract

from orders.service_layer import handlers, queries

QUERY_ROUTES: dict[str, Route] = {
    contract.LIST_EXTERNAL_ORDERS: Route(contract.ListExternalOrders, queries.list_orders),
    contract.GET_EXTERNAL_ORDER: Route(contract.ExternalOrderRef, queries.get_order),
}
COMMAND_ROUTES: dict[str, Route] = {
    contract.REJECT_EXTERNAL_ORDER: Route(contract.RejectExternalOrder, handlers.reject),
}
# integrations.events: only the hand-over matters here; the integration events are ignored.
EVENT_ROUTES: dict[str, Route] = {
    inbound.ORDER_RECEIVED: Route(inbound.OrderReceived, handlers.order_received),
}
