"""Orders from the integrations service's hand-over, and the restaurant's commands on them.

Everything runs in the consumer's transaction with its inbox row: a redelivered message is a
no-op, and the events emitted and the reply (outbox) commit with the change. Every status change
asks the lifecycle's transition table (orders.domain.lifecycle). An answer the requester must act
on (404, 409) is a reply, never an exception.

Accept (and retry-injection) write the POS injection to the outbox and then hold their reply: a
``reply_waits`` row, answered in the transaction that handles the POS's answer on pos.order-events
(orders.service_layer.pos_events) or, when the wait is over, by the timer with injection
``pending``. So the 200 costs no broker hop beyond the injection's own, and a restart answers the
waits it finds (see orders.service_layer.timer).
"""
from __future__ import annotations

from datetime import timedelta

from posint_common import outbox
from posint_common.consumer import MessageContext, PermanentError
from posint_common.contracts import inbound, integrations, orders as contract, pos, topics
from posint_common.contracts.problem import problem
from posint_common.contracts.replies import Reply
from posint_common.envelope import Envelope, utcnow
from posint_common.log import get_logger

from orders.adapters import metrics
from orders.adapters.repository import OrderRepository
from orders.domain import lifecycle
from orders.domain.lifecycle import AFTER_ACCEPT, Source, Status
from orders.domain.model import IntegrationSettings, Order, accept_by
from orders.service_layer import views
from orders.service_layer.replies import document

log = get_logger(__name__)

UPDATED_BY_PLATFORM = "updated by the platform"
NOT_APPLIED = "not applied"


def not_found(order_id: int) -> Reply:
    return Reply(status=404, problem=problem(404, "not-found", "Not Found", f"No external order {order_id}."))


def conflict(decision: lifecycle.Decision, action: str) -> Reply:
    allowed = ", ".join(decision.allowed) or "none"
    body = problem(409, "illegal-transition", "Conflict",
                   f"The order is {decision.current.value}; '{action}' is not allowed from there (allowed: {allowed}).")
    return Reply(status=409, problem=body.model_copy(update={"current_status": decision.current.value,
                                                            "allowed_actions": list(decision.allowed)}))


Queued = tuple[str, Envelope]  # (topic, envelope): an outbox row not written yet


def queued(ctx: MessageContext, topic: str, type: str, message, order: Order) -> Queued:
    """What ``ctx.emit`` would write, for writing several rows in one statement (outbox.add_many)."""
    return topic, Envelope.wrap(message, source=ctx.source, type=type, cause=ctx.envelope, subject=str(order.id))


def order_event(ctx: MessageContext, type: str, order: Order, model: type[contract.OrderEvent] = contract.OrderEvent,
                **fields) -> Queued:
    return queued(ctx, topics.ORDERS_EVENTS, type, model(**dict(views.event(order)), **fields), order)


async def emit_order(ctx: MessageContext, type: str, order: Order, model: type[contract.OrderEvent] = contract.OrderEvent,
                     **fields) -> None:
    await outbox.add_many(ctx.conn, ctx.schema, [order_event(ctx, type, order, model, **fields)])


def injection(ctx: MessageContext, order: Order) -> Queued:
    """The POS injection command (pos.orders, key = order id), for the order's current attempt."""
    command = pos.InjectOrder(
        order_id=order.id, tenant_id=order.tenant_id, integration_id=order.integration_id, provider=order.provider,
        external_id=order.external_id, attempt=order.injection_attempt, prep_time_minutes=order.prep_time_minutes,
        order=inbound.NormalizedOrder.model_validate(order.order),
    )
    return queued(ctx, topics.POS_ORDERS, pos.INJECT_ORDER, command, order)


async def tell_pos_cancelled(ctx: MessageContext, order: Order, reason: str | None) -> None:
    command = pos.CancelOrder(order_id=order.id, tenant_id=order.tenant_id, reason=reason)
    await ctx.emit(topics.POS_ORDERS, pos.CANCEL_ORDER, command, subject=str(order.id))


async def move(ctx: MessageContext, repository: OrderRepository, order: Order, action: str, source: Source,
               reason: str | None = None) -> tuple[lifecycle.Decision, Order]:
    """Ask the table; on ``apply`` change the status and write the history line."""
    decision = lifecycle.decide(order.status, action, source)
    if decision.outcome == "apply":
        order = await repository.transition(order.id, decision.current, decision.target, source, reason)
        metrics.transition(order.provider, decision.target, source)
    return decision, order


async def expire_if_due(ctx: MessageContext, repository: OrderRepository, order: Order) -> Order:
    """A received order past its deadline is expired, whoever looks first (the timer or a command):
    an accept after ``accept_by`` loses to the deadline even when the timer has not ticked yet."""
    if order.status is Status.RECEIVED and order.accept_by is not None and order.accept_by <= utcnow():
        decision, order = await move(ctx, repository, order, "expire", Source.TIMER, "not accepted in time")
        if decision.outcome == "apply":
            await emit_order(ctx, contract.ORDER_EXPIRED, order)
            log.info("order_expired", order_id=order.id)
    return order


async def load(ctx: MessageContext, order_id: int) -> tuple[OrderRepository, Order | None]:
    """The tenant's order, locked for this transaction, with a due deadline applied first."""
    repository = OrderRepository(ctx.conn, ctx.envelope.tenantid)
    order = await repository.get(order_id, for_update=True)
    if order is not None:
        order = await expire_if_due(ctx, repository, order)
    return repository, order


async def load_with_settings(ctx: MessageContext, order_id: int) -> tuple[OrderRepository, Order | None,
                                                                         IntegrationSettings]:
    """As ``load``, with the order's integration settings read in the same statement."""
    repository = OrderRepository(ctx.conn, ctx.envelope.tenantid)
    order, settings = await repository.get_with_settings(order_id)
    if order is not None:
        order = await expire_if_due(ctx, repository, order)
    return repository, order, settings


async def accept_order(ctx: MessageContext, repository: OrderRepository, order: Order, prep_time_minutes: int,
                       source: Source) -> Order:
    """received -> accepted: history, ``order.accepted`` and the POS injection, in this transaction."""
    decision = lifecycle.decide(order.status, "accept", source)
    assert decision.outcome == "apply", decision
    order = await repository.accept(order.id, decision.current, prep_time_minutes, source)
    metrics.transition(order.provider, decision.target, source)
    metrics.accepted(source, order.created_at)
    await outbox.add_many(ctx.conn, ctx.schema, [
        order_event(ctx, contract.ORDER_ACCEPTED, order, contract.OrderAccepted, prep_time_minutes=prep_time_minutes,
                    accepted_at=utcnow()),
        injection(ctx, order),
    ])
    log.info("order_accepted", order_id=order.id, source=source.value)
    return order


async def wait_for_pos(ctx: MessageContext, repository: OrderRepository, order: Order, wait_s: float) -> Reply | None:
    """Hold the reply until the POS answers (or the wait is over): a wait row instead of a reply."""
    if wait_s <= 0 or not ctx.envelope.replyto:
        if ctx.envelope.replyto:
            metrics.injection(order.provider, contract.InjectionStatus.PENDING.value)
        return await document(repository, order)
    await repository.add_wait(order.id, ctx.envelope.id, ctx.envelope.correlationid, ctx.envelope.replyto,
                              utcnow() + timedelta(seconds=wait_s))
    return None


# --- integrations.events ---------------------------------------------------------------------------


def integration_settings(config: dict) -> IntegrationSettings:
    """The order settings of an integration's config (a delivery provider's; others have none)."""
    defaults = IntegrationSettings()
    return IntegrationSettings(
        auto_accept=config.get("auto_accept") is True,
        prep_time_minutes=config.get("prep_time_minutes") or defaults.prep_time_minutes,
        accept_window_seconds=config.get("accept_window_seconds") or None,
    )


async def integration_changed(ctx: MessageContext, event: integrations.IntegrationState) -> None:
    """integration-created / -updated carry the config: keep what orders needs of it."""
    tenant_id = ctx.envelope.tenantid
    if not tenant_id:
        raise PermanentError("integration event without a tenantid")
    await OrderRepository(ctx.conn, tenant_id).save_integration(event.id, event.provider, integration_settings(event.config))


async def order_received(ctx: MessageContext, event: inbound.OrderReceived) -> None:
    """A new order, or a later copy of one: the same content is nothing new; changed content is
    kept as an update in the order's history (``order.updated``), never a second order. A new order
    of an integration with auto-accept is accepted (and injected) at once."""
    tenant_id = ctx.envelope.tenantid
    if not tenant_id:
        raise PermanentError("order-received without a tenantid")
    repository = OrderRepository(ctx.conn, tenant_id)
    normalized = event.order.model_dump(mode="json")
    default_window = accept_by(event.provider, event.received_at) - event.received_at  # the provider's
    created, settings = await repository.add_received(event.integration_id, event.provider, event.external_id,
                                                      normalized, event.raw_data, event.received_at, default_window)
    if created is not None:
        metrics.transition(created.provider, Status.RECEIVED, Source.PLATFORM)
        await emit_order(ctx, contract.ORDER_CREATED, created)
        log.info("order_created", order_id=created.id, integration_id=created.integration_id)
        if settings.auto_accept:
            created = await expire_if_due(ctx, repository, created)
            if created.status is Status.RECEIVED:
                await accept_order(ctx, repository, created, settings.prep_time, Source.AUTO_ACCEPT)
        return
    current = await repository.by_external_id(event.integration_id, event.external_id)
    if current.order == normalized and current.raw_data == event.raw_data:
        return
    updated = await repository.set_content(current.id, normalized, event.raw_data)
    await repository.record(current.id, current.status, current.status, Source.PLATFORM, UPDATED_BY_PLATFORM)
    await emit_order(ctx, contract.ORDER_UPDATED, updated)
    log.info("order_updated", order_id=updated.id, integration_id=updated.integration_id)


async def platform_cancelled(ctx: MessageContext, event: contract.PlatformOrderCancelled) -> None:
    """Before acceptance the order is cancelled; after it, cancel_requested until the POS confirms
    (it is told on pos.orders). A cancellation the table refuses is kept in the history only."""
    tenant_id = ctx.envelope.tenantid
    if not tenant_id:
        raise PermanentError("order-cancelled without a tenantid")
    repository = OrderRepository(ctx.conn, tenant_id)
    order = await repository.by_external_id(event.integration_id, event.external_id)
    if order is None:
        log.warning("cancel_for_unknown_order", integration_id=event.integration_id)
        return
    order = await expire_if_due(ctx, repository, order)
    reason = event.reason or "cancelled by the platform"
    decision, order = await move(ctx, repository, order, "cancel", Source.PLATFORM, reason)
    if decision.outcome == "refuse":
        await repository.record(order.id, order.status, order.status, Source.PLATFORM, f"cancel {NOT_APPLIED}: {reason}")
    elif decision.outcome == "apply" and decision.target is Status.CANCELLED:
        await emit_order(ctx, contract.ORDER_CANCELLED, order, contract.OrderCancelled, source=Source.PLATFORM, reason=reason)
    elif decision.outcome == "apply":
        await tell_pos_cancelled(ctx, order, reason)
    log.info("platform_cancelled", order_id=order.id, outcome=decision.outcome, status=order.status.value)


async def status_pushed(ctx: MessageContext, event: integrations.OrderStatusPushed) -> None:
    """The integrations service told the platform the order's status (or gave up): kept on the order
    as its ``platform_sync``, the latest report winning. Not a transition, so no history line and
    no order event."""
    tenant_id = ctx.envelope.tenantid
    if not tenant_id:
        raise PermanentError("order-status-pushed without a tenantid")
    sync = contract.PlatformSync(status=event.status, outcome=event.outcome, attempts=event.attempts,
                                 error=event.error, at=event.finished_at).model_dump(mode="json")
    kept = await OrderRepository(ctx.conn, tenant_id).set_platform_sync(event.order_id, event.integration_id, sync,
                                                                        event.finished_at)
    log.info("platform_sync_recorded" if kept else "platform_sync_not_recorded", order_id=event.order_id,
             status=event.status, outcome=event.outcome.value)


# --- orders.commands (the restaurant, through the API) ----------------------------------------------


async def reject(ctx: MessageContext, command: contract.RejectExternalOrder) -> Reply:
    repository, order = await load(ctx, command.id)
    if order is None:
        return not_found(command.id)
    reason = command.reason_code.value + (f": {command.detail}" if command.detail else "")
    decision, order = await move(ctx, repository, order, "reject", Source.MERCHANT, reason)
    if decision.outcome == "refuse":
        return conflict(decision, "reject")
    if decision.outcome == "apply":
        await emit_order(ctx, contract.ORDER_REJECTED, order, contract.OrderRejected, reason_code=command.reason_code,
                         detail=command.detail, unavailable_item_ids=command.unavailable_item_ids, rejected_at=utcnow())
    return await document(repository, order)


async def accept(ctx: MessageContext, command: contract.AcceptExternalOrder, *, wait_s: float) -> Reply | None:
    """Accept and inject; the reply waits for the POS (``wait_s``). Accepting again answers the
    order as it stands, with no second injection."""
    repository, order, settings = await load_with_settings(ctx, command.id)
    if order is None:
        return not_found(command.id)
    decision = lifecycle.decide(order.status, "accept", Source.MERCHANT)
    if decision.outcome == "refuse":
        return conflict(decision, "accept")
    if decision.outcome == "repeat":
        return await document(repository, order)
    prep = command.prep_time_minutes or settings.prep_time
    order = await accept_order(ctx, repository, order, prep, Source.MERCHANT)
    return await wait_for_pos(ctx, repository, order, wait_s)


async def retry_injection(ctx: MessageContext, command: contract.ExternalOrderRef, *, wait_s: float) -> Reply | None:
    """Send a failed injection again (next attempt); pending or injected: the order as it stands."""
    repository, order = await load(ctx, command.id)
    if order is None:
        return not_found(command.id)
    if order.status not in AFTER_ACCEPT or order.injection_status is None:
        allowed = lifecycle.allowed_actions(order.status, Source.MERCHANT)
        body = problem(409, "illegal-transition", "Conflict",
                       f"The order is {order.status.value}; only an accepted order's injection can be retried.")
        return Reply(status=409, problem=body.model_copy(update={"current_status": order.status.value,
                                                                "allowed_actions": list(allowed)}))
    if order.injection_status != contract.InjectionStatus.FAILED:
        return await document(repository, order)
    order = await repository.retry_injection(order.id)
    await outbox.add_many(ctx.conn, ctx.schema, [injection(ctx, order)])
    log.info("injection_retried", order_id=order.id, attempt=order.injection_attempt)
    return await wait_for_pos(ctx, repository, order, wait_s)


async def mark_ready(ctx: MessageContext, command: contract.ExternalOrderRef) -> Reply:
    return await merchant_move(ctx, command.id, "ready", contract.ORDER_READY)


async def complete(ctx: MessageContext, command: contract.ExternalOrderRef) -> Reply:
    return await merchant_move(ctx, command.id, "complete", contract.ORDER_COMPLETED)


async def merchant_move(ctx: MessageContext, order_id: int, action: str, event_type: str) -> Reply:
    """A restaurant's own report (for a POS that does not send it): the move, its event once."""
    repository, order = await load(ctx, order_id)
    if order is None:
        return not_found(order_id)
    decision, order = await move(ctx, repository, order, action, Source.MERCHANT)
    if decision.outcome == "refuse":
        return conflict(decision, action)
    if decision.outcome == "apply":
        await emit_order(ctx, event_type, order)
    return await document(repository, order)


async def cancel(ctx: MessageContext, command: contract.CancelExternalOrder) -> Reply:
    """The restaurant cancels (final at once, per the table); an accepted order's POS is told."""
    repository, order = await load(ctx, command.id)
    if order is None:
        return not_found(command.id)
    was = order.status
    decision, order = await move(ctx, repository, order, "cancel", Source.MERCHANT, command.reason)
    if decision.outcome == "refuse":
        return conflict(decision, "cancel")
    if decision.outcome == "apply":
        await emit_order(ctx, contract.ORDER_CANCELLED, order, contract.OrderCancelled, source=Source.MERCHANT,
                         reason=command.reason)
        if was in AFTER_ACCEPT or was is Status.CANCEL_REQUESTED:
            await tell_pos_cancelled(ctx, order, command.reason)
    return await document(repository, order)
