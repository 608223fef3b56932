"""Message type -> handler, per consumer."""
from posint_common.consumer import Route
from posint_common.contracts import integrations as contract

from integrations.service_layer import queries

QUERY_ROUTES = {
    contract.LIST_INTEGRATIONS: Route(contract.ListIntegrations, queries.list_integrations),
}
COMMAND_ROUTES: dict[str, Route] = {}
