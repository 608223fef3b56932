"""Published contracts: topic names and the pydantic model of every message type we emit.

Other teams consume these; a change to a payload means a new ``.vN`` type, never an edit.
"""
from posint_common.contracts import inbound, integrations, replies, tenants

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
    replies.REPLY: replies.Reply,
    tenants.TENANT_CREATED: tenants.TenantCreated,
    replies.DEAD_LETTER: replies.DeadLetter,
}
