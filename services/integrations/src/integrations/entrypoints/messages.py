"""Message type -> handler, per consumer."""
from posint_common.consumer import Route
from posint_common.contracts import inbound, integrations as contract

from integrations.service_layer import queries
from integrations.service_layer.handlers import IntegrationHandlers
from integrations.service_layer.inbound import InboundHandlers


def query_routes(handlers: IntegrationHandlers) -> dict[str, Route]:
    return {
        contract.LIST_INTEGRATIONS: Route(contract.ListIntegrations, queries.list_integrations),
        contract.GET_INTEGRATION: Route(contract.IntegrationRef, handlers.get),
    }


def command_routes(handlers: IntegrationHandlers, inbound_handlers: InboundHandlers) -> dict[str, Route]:
    return {
        contract.CREATE_INTEGRATION: Route(contract.CreateIntegration, handlers.create),
        contract.UPDATE_INTEGRATION: Route(contract.UpdateIntegration, handlers.update),
        contract.DELETE_INTEGRATION: Route(contract.IntegrationRef, handlers.delete),
        inbound.RECEIVE_INBOUND_ORDER: Route(inbound.ReceiveInboundOrder, inbound_handlers.receive),
    }
