"""Message type -> handler, per consumer."""
from functools import partial

from posint_common.consumer import Route
from posint_common.contracts import inbound, integrations, orders as contract, pos

from orders.adapters.metrics import deferred
from orders.config import OrdersSettings
from orders.service_layer import handlers, pos_events, queries

QUERY_ROUTES: dict[str, Route] = {
    contract.LIST_EXTERNAL_ORDERS: Route(contract.ListExternalOrders, queries.list_orders),
    contract.GET_EXTERNAL_ORDER: Route(contract.ExternalOrderRef, queries.get_order),
}


def counted(routes: dict[str, Route]) -> dict[str, Route]:
    """Each handler's metrics counted only when it returns (orders.adapters.metrics.deferred)."""
    return {type: Route(route.model, deferred(route.handler)) for type, route in routes.items()}


def command_routes(settings: OrdersSettings) -> dict[str, Route]:
    wait_s = settings.orders_accept_wait_ms / 1000
    return counted({
        contract.REJECT_EXTERNAL_ORDER: Route(contract.RejectExternalOrder, handlers.reject),
        contract.ACCEPT_EXTERNAL_ORDER: Route(contract.AcceptExternalOrder, partial(handlers.accept, wait_s=wait_s)),
        contract.RETRY_INJECTION: Route(contract.ExternalOrderRef, partial(handlers.retry_injection, wait_s=wait_s)),
        contract.MARK_READY: Route(contract.ExternalOrderRef, handlers.mark_ready),
        contract.COMPLETE_EXTERNAL_ORDER: Route(contract.ExternalOrderRef, handlers.complete),
        contract.CANCEL_EXTERNAL_ORDER: Route(contract.CancelExternalOrder, handlers.cancel),
    })


# integrations.events: the hand-over, platform cancellations, each integration's config, and the
# outcome of telling the platform an order's status.
EVENT_ROUTES: dict[str, Route] = counted({
    inbound.ORDER_RECEIVED: Route(inbound.OrderReceived, handlers.order_received),
    contract.PLATFORM_ORDER_CANCELLED: Route(contract.PlatformOrderCancelled, handlers.platform_cancelled),
    integrations.INTEGRATION_CREATED: Route(integrations.IntegrationState, handlers.integration_changed),
    integrations.INTEGRATION_UPDATED: Route(integrations.IntegrationState, handlers.integration_changed),
    integrations.ORDER_STATUS_PUSHED: Route(integrations.OrderStatusPushed, handlers.status_pushed),
})
# pos.order-events: the POS's answers.
POS_ROUTES: dict[str, Route] = counted({
    pos.ORDER_INJECTED: Route(pos.PosOrderInjected, pos_events.injected),
    pos.ORDER_INJECTION_FAILED: Route(pos.PosOrderInjectionFailed, pos_events.injection_failed),
    pos.ORDER_PREPARING: Route(pos.PosOrderEvent, pos_events.preparing),
    pos.ORDER_READY: Route(pos.PosOrderEvent, pos_events.ready),
    pos.ORDER_COMPLETED: Route(pos.PosOrderEvent, pos_events.completed),
    pos.ORDER_CANCELLED: Route(pos.PosOrderEvent, pos_events.cancelled),
    pos.PAYMENT_COMPLETED: Route(pos.PosPaymentCompleted, pos_events.payment_completed),
})
