"""What the orders service's events ask of the platforms: an order's status sent back to its
delivery platform, a completed order booked in the tenant's ledgers.

The event handlers (consumer group ``integrations.orders`` on ``orders.events``, with the inbox)
only record the push owed (``platform_pushes``) in the event's transaction; the push worker
(entrypoints/push_worker.py) makes the call, outside any transaction, and retries with backoff:
a status push until the platform's deadline (``STATUS_PUSH_DEADLINE_S`` after the event), a
booking up to ``SALE_PUSH_MAX_ATTEMPTS`` tries (a manual sync of the ledger tries failed ones
again). A status outcome is reported as ``order-status-pushed`` on integrations.events.

A booking carries an idempotency key derived from our order id (``posint-order-<id>``), the same
on every try: the ledger books it once however often a timed-out call is repeated (QuickBooks
``requestid``, Xero ``Idempotency-Key``), and (integration, order) is unique here, so a
redelivered ``order.completed`` adds nothing.
"""
from __future__ import annotations

import random
from dataclasses import dataclass

import asyncpg

from posint_common import outbox
from posint_common.consumer import MessageContext
from posint_common.contracts import integrations as contract, orders, topics
from posint_common.contracts.inbound import order_subject
from posint_common.envelope import Envelope
from posint_common.log import get_logger

from integrations.adapters import inbound_repository, metrics, push_repository as pushes
from integrations.adapters.providers.client import OrderStatusKind, ProviderError, StatusUpdate
from integrations.domain.model import Integration
from integrations.service_layer.clients import Clients, describe

log = get_logger(__name__)



def idempotency_key(order_id: int) -> str:
    """The same for every try of one order's booking (QuickBooks allows 50 characters)."""
    return f"posint-order-{order_id}"


@dataclass(frozen=True)
class PushSettings:
    status_deadline_s: float
    sale_max_attempts: int
    retry_initial_s: float
    retry_max_s: float


# --- Event handlers -----------------------------------------------------------------------------

@dataclass(frozen=True)
class OrderEventHandlers:
    settings: PushSettings

    async def _delivery_integration(self, ctx: MessageContext, event: orders.OrderEvent) -> Integration | None:
        """The order's integration, if its platform can be told anything."""
        integration = await inbound_repository.live_integration(ctx.conn, event.integration_id)
        if integration is None or integration.tenant_id != event.tenant_id or integration.integration_type != "delivery":
            return None
        if not integration.is_active:
            log.info("status_push_skipped", integration_id=integration.id, order_id=event.order.id, reason="inactive")
            return None
        if integration.provider == "custom" and not integration.config.get("api_base_url"):
            return None  # push-only: there is no platform API to tell
        return integration

    async def _status(self, ctx: MessageContext, event: orders.OrderEvent, update: StatusUpdate) -> None:
        integration = await self._delivery_integration(ctx, event)
        if integration is None:
            return
        payload = {key: value for key, value in (("prep_time_minutes", update.prep_time_minutes),
                                                 ("reason", update.reason), ("detail", update.detail)) if value is not None}
        await pushes.add_status(ctx.conn, integration.tenant_id, integration.id, event.order.id, event.order.external_id,
                                update.status.value, payload, self.settings.status_deadline_s,
                                ctx.envelope.correlationid)

    async def accepted(self, ctx: MessageContext, event: orders.OrderAccepted) -> None:
        await self._status(ctx, event, StatusUpdate(OrderStatusKind.ACCEPTED, prep_time_minutes=event.prep_time_minutes))

    async def rejected(self, ctx: MessageContext, event: orders.OrderRejected) -> None:
        await self._status(ctx, event, StatusUpdate(OrderStatusKind.REJECTED, reason=event.reason_code.value,
                                                    detail=event.detail))

    async def ready(self, ctx: MessageContext, event: orders.OrderEvent) -> None:
        await self._status(ctx, event, StatusUpdate(OrderStatusKind.READY))

    async def cancelled(self, ctx: MessageContext, event: orders.OrderCancelled) -> None:
        if event.source == orders.ChangeSource.PLATFORM:
            return  # the platform cancelled it: nothing to tell it
        await self._status(ctx, event, StatusUpdate(OrderStatusKind.CANCELLED, reason=event.reason))

    async def expired(self, ctx: MessageContext, event: orders.OrderEvent) -> None:
        await self._status(ctx, event, StatusUpdate(OrderStatusKind.EXPIRED, reason="expired"))

    async def completed(self, ctx: MessageContext, event: orders.OrderEvent) -> None:
        """Book the sale in each of the tenant's live, active ledgers."""
        rows = await ctx.conn.fetch(
            "SELECT id FROM integrations WHERE tenant_id = $1 AND integration_type = 'accounting'"
            " AND is_active AND deleted_at IS NULL ORDER BY id",
            event.tenant_id,
        )
        order = event.order.model_dump(mode="json")
        for row in rows:
            added = await pushes.add_sale(ctx.conn, event.tenant_id, row["id"], event.order.id, event.order.external_id,
                                          order, idempotency_key(event.order.id), ctx.envelope.correlationid)
            if added is not None:
                log.info("sale_push_queued", integration_id=row["id"], order_id=event.order.id, tenant=event.tenant_id)


# --- The calls ----------------------------------------------------------------------------------

@dataclass
class Pusher:
    """Makes one leased push and records its outcome."""

    schema: str
    source: str
    clients: Clients
    settings: PushSettings

    async def push(self, pool: asyncpg.Pool, push: pushes.Push) -> None:
        async with pool.acquire() as conn:
            integration = await inbound_repository.live_integration(conn, push.integration_id)
        if integration is None or not integration.is_active:
            await self._fail(pool, push, "the integration was deleted or deactivated", integration)
            return
        try:
            client = self.clients.for_integration(integration)
            if push.kind == pushes.SALE:
                ref = await client.push_sale(orders.ExternalOrder.model_validate(push.payload), push.idempotency_key)
            else:
                await client.push_status(push.external_id, StatusUpdate(OrderStatusKind(push.status), **push.payload))
                ref = None
        except ProviderError as error:
            await self._retry_or_fail(pool, push, integration, describe(error), error.retryable, error.retry_after)
            return
        except Exception as error:  # noqa: BLE001 - a bug: tried again on the schedule, then given up
            log.exception("platform_push_crashed", push_id=push.id, kind=push.kind, error=repr(error))
            await self._retry_or_fail(pool, push, integration, f"internal error ({type(error).__name__})", True, None)
            return
        async with pool.acquire() as conn, conn.transaction():
            finished = await pushes.done(conn, push.id, ref.ledger_id if ref else None, ref.number if ref else None)
            await self._report(conn, finished, integration)
        _count(push, integration, "delivered")
        log.info("platform_push_done", push_id=push.id, kind=push.kind, integration_id=push.integration_id,
                 order_id=push.order_id, attempts=push.attempts, ledger_id=ref.ledger_id if ref else None)

    async def _retry_or_fail(self, pool: asyncpg.Pool, push: pushes.Push, integration: Integration, text: str,
                             retryable: bool, retry_after: float | None) -> None:
        if not retryable:
            await self._fail(pool, push, text, integration)
            return
        delay = self._backoff(push.attempts, retry_after)
        if push.kind == pushes.STATUS and push.deadline_at is not None:
            async with pool.acquire() as conn:
                past = await conn.fetchval("SELECT now() + make_interval(secs => $1) > $2", delay, push.deadline_at)
            if past:
                await self._fail(pool, push, f"{text}; gave up at the platform's deadline", integration)
                return
        if push.kind == pushes.SALE and push.attempts >= self.settings.sale_max_attempts:
            await self._fail(pool, push, f"{text}; gave up after {push.attempts} tries", integration)
            return
        async with pool.acquire() as conn:
            await pushes.retry_at(conn, push.id, delay, text)
        _count(push, integration, "retrying")
        log.info("platform_push_retry", push_id=push.id, kind=push.kind, integration_id=push.integration_id,
                 attempts=push.attempts, delay_s=round(delay, 3), error=text)

    def _backoff(self, attempts: int, retry_after: float | None) -> float:
        wait = min(self.settings.retry_max_s, self.settings.retry_initial_s * 2 ** max(0, attempts - 1))
        wait *= 0.8 + random.random() * 0.4  # jitter, so pushes that failed together do not retry together
        return max(wait, retry_after or 0.0)

    async def _fail(self, pool: asyncpg.Pool, push: pushes.Push, error: str, integration: Integration | None) -> None:
        async with pool.acquire() as conn, conn.transaction():
            finished = await pushes.failed(conn, push.id, error)
            await self._report(conn, finished, integration)
        _count(push, integration, "gave_up")
        log.warning("platform_push_failed", push_id=push.id, kind=push.kind, integration_id=push.integration_id,
                    order_id=push.order_id, attempts=push.attempts, error=error)

    async def _report(self, conn: asyncpg.Connection, push: pushes.Push, integration: Integration | None) -> None:
        if push.kind != pushes.STATUS:
            return
        event = contract.OrderStatusPushed(
            integration_id=push.integration_id, provider=integration.provider if integration else "unknown",
            order_id=push.order_id, external_id=push.external_id, status=push.status,
            outcome=contract.PushOutcome.SENT if push.state == "done" else contract.PushOutcome.FAILED,
            attempts=push.attempts, error=push.last_error if push.state == "failed" else None,
            finished_at=push.finished_at,
        )
        envelope = Envelope.wrap(event, source=self.source, type=contract.ORDER_STATUS_PUSHED,
                                 subject=order_subject(push.integration_id, push.external_id), tenantid=push.tenant_id,
                                 correlationid=push.correlation_id)
        await outbox.add(conn, self.schema, topics.INTEGRATIONS_EVENTS, envelope)


def _count(push: pushes.Push, integration: Integration | None, outcome: str) -> None:
    """posint_platform_pushes_total, once the outcome is recorded."""
    metrics.PLATFORM_PUSHES.labels(integration.provider if integration else metrics.UNKNOWN, push.kind, outcome).inc()
