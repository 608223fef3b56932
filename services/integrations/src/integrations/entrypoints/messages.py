"""Message type -> handler, per consumer."""
from posint_common.consumer import Route
from posint_common.contracts import inbound, integrations as contract, orders

from integrations.service_layer import queries, sync
from integrations.service_layer.handlers import IntegrationHandlers
from integrations.service_layer.inbound import InboundHandlers
from integrations.service_layer.pushes import OrderEventHandlers


def query_routes(handlers: IntegrationHandlers) -> dict[str, Route]:
    return {
        contract.LIST_INTEGRATIONS: Route(contract.ListIntegrations, queries.list_integrations),
        contract.GET_INTEGRATION: Route(contract.IntegrationRef, handlers.get),
        contract.LIST_SYNC_RUNS: Route(contract.ListSyncRuns, sync.list_sync_runs),
        contract.GET_SYNC_RUN: Route(contract.SyncRunRef, sync.get_sync_run),
    }


def command_routes(handlers: IntegrationHandlers, inbound_handlers: InboundHandlers) -> dict[str, Route]:
    return {
        contract.CREATE_INTEGRATION: Route(contract.CreateIntegration, handlers.create),
        contract.UPDATE_INTEGRATION: Route(contract.UpdateIntegration, handlers.update),
        contract.DELETE_INTEGRATION: Route(contract.IntegrationRef, handlers.delete),
        inbound.RECEIVE_INBOUND_ORDER: Route(inbound.ReceiveInboundOrder, inbound_handlers.receive),
        contract.START_SYNC: Route(contract.IntegrationRef, sync.start_sync),
    }


def order_event_routes(handlers: OrderEventHandlers) -> dict[str, Route]:
    """The orders service's events that ask something of a platform; the others are ignored."""
    return {
        orders.ORDER_ACCEPTED: Route(orders.OrderAccepted, handlers.accepted),
        orders.ORDER_REJECTED: Route(orders.OrderRejected, handlers.rejected),
        orders.ORDER_READY: Route(orders.OrderEvent, handlers.ready),
        orders.ORDER_CANCELLED: Route(orders.OrderCancelled, handlers.cancelled),
        orders.ORDER_EXPIRED: Route(orders.OrderEvent, handlers.expired),
        orders.ORDER_COMPLETED: Route(orders.OrderEvent, handlers.completed),
    }
