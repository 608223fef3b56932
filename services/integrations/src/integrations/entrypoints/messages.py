"""Message type -> handler, per consumer."""
from posint_common.consumer import Route
from posint_common.contracts import integrations as contract

from integrations.service_layer import queries
from integrations.service_layer.handlers import IntegrationHandlers


def query_routes(handlers: IntegrationHandlers) -> dict[str, Route]:
    return {
        contract.LIST_INTEGRATIONS: Route(contract.ListIntegrations, queries.list_integrations),
        contract.GET_INTEGRATION: Route(contract.IntegrationRef, handlers.get),
    }


def command_routes(handlers: IntegrationHandlers) -> dict[str, Route]:
    return {
        contract.CREATE_INTEGRATION: Route(contract.CreateIntegration, handlers.create),
        contract.UPDATE_INTEGRATION: Route(contract.UpdateIntegration, handlers.update),
        contract.DELETE_INTEGRATION: Route(contract.IntegrationRef, handlers.delete),
    }
