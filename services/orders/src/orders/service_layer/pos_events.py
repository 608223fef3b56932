"""The POS's answers on pos.order-events (consumer group ``orders.pos``, inbox-deduplicated).

``injected`` / ``injection_failed`` set the order's injection and answer the accept waiting for it;
an answer for an older attempt than the order's latest, or after the order was injected, changes
nothing. The kitchen's progress (``preparing``, ``ready``, ``completed``, ``cancelled``) goes through
the transition table like every change; a move the table refuses (late, out of order) is kept in
the history and not applied.
"""
from __future__ import annotations

from posint_common.consumer import MessageContext, PermanentError
from posint_common.contracts import orders as contract, pos
from posint_common.log import get_logger

from orders.adapters import metrics
from orders.adapters.repository import OrderRepository
from orders.domain import lifecycle
from orders.domain.lifecycle import Source, Status
from orders.domain.model import Order
from orders.service_layer.handlers import NOT_APPLIED, emit_order, move, order_event
from orders.service_layer.replies import held_replies

log = get_logger(__name__)

INJECTED, FAILED = contract.InjectionStatus.INJECTED.value, contract.InjectionStatus.FAILED.value


async def _load(ctx: MessageContext, event: pos.PosOrderEvent) -> tuple[OrderRepository, Order | None]:
    if not ctx.envelope.tenantid:
        raise PermanentError("POS answer without a tenantid")
    repository = OrderRepository(ctx.conn, ctx.envelope.tenantid)
    order = await repository.get(event.order_id, for_update=True)
    if order is None:
        log.warning("pos_answer_for_unknown_order", order_id=event.order_id)
    return repository, order


def _stale(order: Order, attempt: int | None) -> bool:
    return order.injection_status in (None, INJECTED) or (attempt is not None and attempt != order.injection_attempt)


async def injected(ctx: MessageContext, event: pos.PosOrderInjected) -> None:
    repository, order = await _load(ctx, event)
    if order is None or _stale(order, event.attempt):
        return
    order = await repository.set_injection(order.id, order.status, INJECTED, Source.POS,
                                           f"injected as {event.pos_order_id}", pos_order_id=event.pos_order_id)
    metrics.injection(order.provider, INJECTED)
    for topic, envelope in [order_event(ctx, contract.ORDER_INJECTED, order),
                            *await held_replies(ctx.source, repository, order)]:
        ctx.defer(topic, envelope)  # one statement; the held replies go to the gateway straight after commit
    log.info("order_injected", order_id=order.id, attempt=order.injection_attempt)


async def injection_failed(ctx: MessageContext, event: pos.PosOrderInjectionFailed) -> None:
    repository, order = await _load(ctx, event)
    if order is None or _stale(order, event.attempt) or order.injection_status == FAILED:
        return
    order = await repository.set_injection(order.id, order.status, FAILED, Source.POS,
                                           f"injection failed: {event.reason}", error=event.reason)
    metrics.injection(order.provider, FAILED)
    for topic, envelope in [order_event(ctx, contract.ORDER_INJECTION_FAILED, order, contract.OrderInjectionFailed,
                                        reason=event.reason),
                            *await held_replies(ctx.source, repository, order)]:
        ctx.defer(topic, envelope)
    log.warning("order_injection_failed", order_id=order.id, attempt=order.injection_attempt)


async def _progress(ctx: MessageContext, event: pos.PosOrderEvent, action: str, event_type: str | None) -> None:
    repository, order = await _load(ctx, event)
    if order is None:
        return
    decision, order = await move(ctx, repository, order, action, Source.POS)
    if decision.outcome == "refuse":
        await repository.record(order.id, order.status, order.status, Source.POS, f"{action} {NOT_APPLIED}")
    elif decision.outcome == "apply" and event_type:
        await emit_order(ctx, event_type, order)


async def preparing(ctx: MessageContext, event: pos.PosOrderEvent) -> None:
    await _progress(ctx, event, "prepare", None)


async def ready(ctx: MessageContext, event: pos.PosOrderEvent) -> None:
    await _progress(ctx, event, "ready", contract.ORDER_READY)


async def completed(ctx: MessageContext, event: pos.PosOrderEvent) -> None:
    """A POS that reports only ``completed`` skips ready: the order passes through it."""
    repository, order = await _load(ctx, event)
    if order is None:
        return
    if lifecycle.decide(order.status, "complete", Source.POS).outcome == "refuse":
        if lifecycle.decide(order.status, "ready", Source.POS).outcome == "apply":
            _, order = await move(ctx, repository, order, "ready", Source.POS)
            await emit_order(ctx, contract.ORDER_READY, order)
    decision, order = await move(ctx, repository, order, "complete", Source.POS)
    if decision.outcome == "refuse":
        await repository.record(order.id, order.status, order.status, Source.POS, f"complete {NOT_APPLIED}")
    elif decision.outcome == "apply":
        await emit_order(ctx, contract.ORDER_COMPLETED, order)


async def cancelled(ctx: MessageContext, event: pos.PosOrderEvent) -> None:
    """Confirms a platform's cancellation (cancel_requested), or the POS cancels an accepted order."""
    repository, order = await _load(ctx, event)
    if order is None:
        return
    action = "confirm_cancel" if order.status is Status.CANCEL_REQUESTED else "cancel"
    decision, order = await move(ctx, repository, order, action, Source.POS, "cancelled at the POS")
    if decision.outcome == "refuse":
        await repository.record(order.id, order.status, order.status, Source.POS, f"cancel {NOT_APPLIED}")
    elif decision.outcome == "apply":
        await emit_order(ctx, contract.ORDER_CANCELLED, order, contract.OrderCancelled, source=Source.POS,
                         reason="cancelled at the POS")


async def payment_completed(ctx: MessageContext, event: pos.PosPaymentCompleted) -> None:
    repository, order = await _load(ctx, event)
    if order is None:
        return
    await emit_order(ctx, contract.PAYMENT_COMPLETED, order, contract.PaymentCompleted, amount=event.amount,
                     currency=event.currency, method=event.method)
