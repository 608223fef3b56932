"""Published contracts: topic names and the pydantic model of every message type we emit.

Other teams consume these; a change to a payload means a new ``.vN`` type, never an edit.
"""
from posint_common.contracts import inbound, integrations, orders, replies, tenants, webhooks

MESSAGE_MODELS = {
    integrations.LIST_INTEGRATIONS: integrations.ListIntegrations,
    integrations.GET_INTEGRATION: integrations.IntegrationRef,
    integrations.CREATE_INTEGRATION: integrations.CreateIntegration,
    integrations.UPDATE_INTEGRATION: integrations.UpdateIntegration,
    integrations.DELETE_INTEGRATION: integrations.IntegrationRef,
    integrations.INTEGRATION_CREATED: integrations.IntegrationCreated,
    integrations.INTEGRATION_UPDATED: integrations.IntegrationUpdated,
    integrations.INTEGRATION_DEACTIVATED: integrations.IntegrationDeactivated,
    inbound.RECEIVE_INBOUND_ORDER: inbound.ReceiveInboundOrder,
    inbound.ORDER_RECEIVED: inbound.OrderReceived,
    orders.LIST_EXTERNAL_ORDERS: orders.ListExternalOrders,
    orders.GET_EXTERNAL_ORDER: orders.ExternalOrderRef,
    orders.REJECT_EXTERNAL_ORDER: orders.RejectExternalOrder,
    orders.ORDER_CREATED: orders.OrderEvent,
    orders.ORDER_UPDATED: orders.OrderEvent,
    orders.ORDER_REJECTED: orders.OrderRejected,
    webhooks.LIST_WEBHOOKS: webhooks.ListWebhooks,
    webhooks.GET_WEBHOOK: webhooks.WebhookRef,
    webhooks.CREATE_WEBHOOK: webhooks.CreateWebhook,
    webhooks.UPDATE_WEBHOOK: webhooks.UpdateWebhook,
    webhooks.DELETE_WEBHOOK: webhooks.WebhookRef,
    webhooks.TEST_WEBHOOK: webhooks.WebhookRef,
    replies.REPLY: replies.Reply,
    tenants.TENANT_CREATED: tenants.TenantCreated,
    replies.DEAD_LETTER: replies.DeadLetter,
}
