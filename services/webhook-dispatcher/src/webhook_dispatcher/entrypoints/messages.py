"""Message type -> handler, per consumer."""
from posint_common.consumer import Route
from posint_common.contracts import integrations, webhooks as contract

from webhook_dispatcher.service_layer import handlers as events
from webhook_dispatcher.service_layer.fanout import FAN_OUT_ROUTES
from webhook_dispatcher.service_layer.handlers import WebhookHandlers


def query_routes(handlers: WebhookHandlers) -> dict[str, Route]:
    return {
        contract.LIST_WEBHOOKS: Route(contract.ListWebhooks, handlers.list),
        contract.GET_WEBHOOK: Route(contract.WebhookRef, handlers.get),
        contract.LIST_DELIVERIES: Route(contract.ListDeliveries, handlers.deliveries),
    }


def command_routes(handlers: WebhookHandlers) -> dict[str, Route]:
    return {
        contract.CREATE_WEBHOOK: Route(contract.CreateWebhook, handlers.create),
        contract.UPDATE_WEBHOOK: Route(contract.UpdateWebhook, handlers.update),
        contract.DELETE_WEBHOOK: Route(contract.WebhookRef, handlers.delete),
        contract.TEST_WEBHOOK: Route(contract.WebhookRef, handlers.test),
        contract.ROTATE_SECRET: Route(contract.WebhookRef, handlers.rotate_secret),
        contract.RETRY_DELIVERY: Route(contract.DeliveryRef, handlers.retry_delivery),
        contract.RECOVER_WEBHOOK: Route(contract.RecoverWebhook, handlers.recover),
    }


EVENT_ROUTES: dict[str, Route] = {
    integrations.INTEGRATION_CREATED: Route(integrations.IntegrationCreated, events.integration_created),
    integrations.INTEGRATION_UPDATED: Route(integrations.IntegrationUpdated, events.integration_updated),
    integrations.INTEGRATION_DEACTIVATED: Route(integrations.IntegrationDeactivated, events.integration_deactivated),
    **FAN_OUT_ROUTES,
}
