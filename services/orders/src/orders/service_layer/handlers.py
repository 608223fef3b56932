"""Orders from the integrations service's hand-over, and the restaurant's commands on them.

Everything runs in the consumer's transaction with its inbox row: a redelivered message is a
no-op, and the events emitted and the reply (outbox) commit with the change. Every status change
asks the lifecycle's transition table (orders.domain.lifecycle). An answer the requester must act
on (404, 409) is a reply, never an exception.
"""
from __future__ import annotations

from posint_common.consumer import MessageContext, PermanentError
from posint_common.contracts import inbound, orders as contract, topics
from posint_common.contracts.problem import problem
from posint_common.contracts.replies import Reply
from posint_common.envelope import utcnow
from posint_common.log import get_logger

from orders.adapters.repository import OrderRepository
from orders.domain import lifecycle
from orders.domain.lifecycle import Source, Status
from orders.domain.model import accept_by
from orders.service_layer import views

log = get_logger(__name__)

UPDATED_BY_PLATFORM = "updated by the platform"


def not_found(order_id: int) -> Reply:
    return Reply(status=404, problem=problem(404, "not-found", "Not Found", f"No external order {order_id}."))


def conflict(decision: lifecycle.Decision, action: str) -> Reply:
    allowed = ", ".join(decision.allowed) or "none"
    body = problem(409, "illegal-transition", "Conflict",
                   f"The order is {decision.current.value}; '{action}' is not allowed from there (allowed: {allowed}).")
    return Reply(status=409, problem=body.model_copy(update={"current_status": decision.current.value,
                                                            "allowed_actions": list(decision.allowed)}))


async def document(repository: OrderRepository, order) -> Reply:
    detail = views.detail(order, await repository.history(order.id))
    return Reply(status=200, body=contract.ExternalOrderDocument(data=detail).model_dump(mode="json", by_alias=True))


async def order_received(ctx: MessageContext, event: inbound.OrderReceived) -> None:
    """A new order, or a later copy of one: the same content is nothing new; changed content is
    kept as an update in the order's history (``order.updated``), never a second order."""
    tenant_id = ctx.envelope.tenantid
    if not tenant_id:
        raise PermanentError("order-received without a tenantid")
    repository = OrderRepository(ctx.conn, tenant_id)
    normalized = event.order.model_dump(mode="json")
    created = await repository.add(event.integration_id, event.provider, event.external_id, normalized, event.raw_data,
                                   event.received_at, accept_by(event.provider, event.received_at))
    if created is not None:
        await repository.record(created.id, None, Status.RECEIVED, Source.PLATFORM)
        await ctx.emit(topics.ORDERS_EVENTS, contract.ORDER_CREATED, views.event(created), subject=str(created.id))
        log.info("order_created", order_id=created.id, integration_id=created.integration_id)
        return
    current = await repository.by_external_id(event.integration_id, event.external_id)
    if current.order == normalized and current.raw_data == event.raw_data:
        return
    updated = await repository.set_content(current.id, normalized, event.raw_data)
    await repository.record(current.id, current.status, current.status, Source.PLATFORM, UPDATED_BY_PLATFORM)
    await ctx.emit(topics.ORDERS_EVENTS, contract.ORDER_UPDATED, views.event(updated), subject=str(updated.id))
    log.info("order_updated", order_id=updated.id, integration_id=updated.integration_id)


async def reject(ctx: MessageContext, command: contract.RejectExternalOrder) -> Reply:
    repository = OrderRepository(ctx.conn, ctx.envelope.tenantid)
    order = await repository.get(command.id, for_update=True)
    if order is None:
        return not_found(command.id)
    decision = lifecycle.decide(order.status, "reject", Source.MERCHANT)
    if decision.outcome == "refuse":
        return conflict(decision, "reject")
    if decision.outcome == "apply":
        reason = command.reason_code.value + (f": {command.detail}" if command.detail else "")
        order = await repository.set_status(order.id, decision.target)
        await repository.record(order.id, decision.current, decision.target, Source.MERCHANT, reason)
        rejected = contract.OrderRejected(
            **dict(views.event(order)), reason_code=command.reason_code, detail=command.detail,
            unavailable_item_ids=command.unavailable_item_ids, rejected_at=utcnow(),
        )
        await ctx.emit(topics.ORDERS_EVENTS, contract.ORDER_REJECTED, rejected, subject=str(order.id))
    return await document(repository, order)
