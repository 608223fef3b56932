"""Fan-out: an event the catalog names becomes one message per matching endpoint, recorded in the
consumer's transaction, the one that claims the event in the inbox: the event's offset is committed
only after that, so no process dying at any moment loses a message (at least once), and a
redelivered event records nothing twice (inbox, and the message id derived from the event)."""
from __future__ import annotations

import uuid

from posint_common.consumer import MessageContext, Route
from posint_common.contracts import webhooks as contract
from posint_common.log import get_logger

from webhook_dispatcher.adapters import messages
from webhook_dispatcher.adapters.sender import message

log = get_logger(__name__)

MESSAGE_IDS = uuid.UUID("6f0d3c1e-9f53-4d36-9b1e-2f7c8c2b5a10")  # namespace of the derived webhook-ids


def message_id(event_key: str, endpoint_id: int) -> str:
    """The webhook-id of one event to one endpoint: the same whenever it is worked out again."""
    return "msg_" + uuid.uuid5(MESSAGE_IDS, f"{event_key}#{endpoint_id}").hex


async def record_for_endpoints(ctx_conn, tenant_id: str, integration_id: int, name: str, event_key: str,
                               order_key: str | None, body: str, *, besides: int | None = None) -> int:
    endpoints = await messages.matching_endpoints(ctx_conn, tenant_id, integration_id, name, besides=besides)
    ids = [message_id(event_key, endpoint) for endpoint in endpoints]
    return await messages.record(ctx_conn, endpoints, ids, name, order_key, body)


async def fan_out(ctx: MessageContext, event: contract.FannedOutEvent) -> None:
    envelope = ctx.envelope
    name = contract.EVENT_NAMES[envelope.type]
    tenant_id = envelope.tenantid or event.tenant_id
    if tenant_id is None:
        log.warning("webhook_event_without_tenant", message_type=envelope.type, message_id=envelope.id)
        return
    body = message(name, contract.webhook_data(envelope.data), envelope.time)
    await record_for_endpoints(ctx.conn, tenant_id, event.integration_id, name, f"{envelope.source}/{envelope.id}",
                               envelope.subject, body)


FAN_OUT_ROUTES: dict[str, Route] = {type_: Route(contract.FannedOutEvent, fan_out) for type_ in contract.EVENT_NAMES}
