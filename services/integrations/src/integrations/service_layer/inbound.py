"""Signed inbound orders: ``POST /integrations/{id}/inbound``, forwarded by the gateway untouched.

In the command's transaction (with its inbox row): find the integration by id, check the
provider's signature on the exact bytes, then parse the provider's payload into the normalized
order, record it and its ``order-received`` event (outbox) and answer 202. The reply is itself in
the outbox, so the caller hears 202 only once the order and its hand-over are committed.

Unauthenticated callers learn nothing they could not guess: an unknown or deleted id and a bad
signature are the same 401 (a decoy HMAC keeps the work alike), and only a verified push learns
that the integration is inactive (409) or that its payload is wrong (400, kept for inspection).
"""
from __future__ import annotations

import hashlib
import hmac
import json
import math
import re
import secrets
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Callable

import asyncpg

from posint_common import outbox
from posint_common.consumer import MessageContext
from posint_common.contracts import inbound as contract, limits, orders as orders_contract, topics
from posint_common.contracts.problem import problem
from posint_common.contracts.replies import Reply
from posint_common.envelope import Envelope
from posint_common.log import get_logger

from integrations.adapters import inbound_repository as repository, metrics
from integrations.adapters.providers import ADAPTERS, Cancellation, InvalidOrder, Keys, Parsed, SignatureError
from integrations.domain.model import Integration
from integrations.service_layer.secrets import Secrets

log = get_logger(__name__)

MAX_WEBHOOK_ID = 256
MAX_DEPTH = 32  # JSON nesting; orders are a few levels deep
PLAIN_KEY = re.compile(r"[A-Za-z0-9_-]{1,64}")
DECOY_KEY = secrets.token_bytes(32)
UNAUTHORIZED = Reply(
    status=401, headers={"WWW-Authenticate": 'Signature realm="posint-inbound"'},
    problem=problem(401, "inbound-unauthorized", "Unauthorized",
                    "The request is not signed for this integration (see the provider's signature scheme)."),
)


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _finite(text: str) -> float:
    value = float(text)
    if math.isinf(value):
        raise ValueError("a number is out of range")
    return value


def _storable(value: Any, path: str = "$", depth: int = 0) -> None:
    """Postgres jsonb (here and at the orders service) refuses NUL and unpaired surrogates, and a
    deep document would exhaust the stack of whoever walks it next. ``path`` names where, quoting
    only plain keys."""
    if depth > MAX_DEPTH:
        raise InvalidOrder(f"The body is nested deeper than {MAX_DEPTH} levels at {path}.")
    if isinstance(value, str):
        if "\x00" in value:
            raise InvalidOrder(f"The body holds a NUL character (\\u0000) at {path}.")
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            raise InvalidOrder(f"The body holds an unpaired surrogate escape at {path}.") from None
    elif isinstance(value, dict):
        for key, item in value.items():
            _storable(key, path, depth + 1)
            _storable(item, f"{path}.{key if PLAIN_KEY.fullmatch(key) else '?'}"[:200], depth + 1)
    elif isinstance(value, list):
        for index, item in enumerate(value):
            _storable(item, f"{path}[{index}]"[:200], depth + 1)


def parse_document(body: bytes) -> dict[str, Any]:
    """The body as a JSON object, or InvalidOrder saying why not (never quoting it)."""
    try:
        document = json.loads(body.decode("utf-8"), parse_constant=_no_constant, parse_float=_finite)
    except UnicodeDecodeError:
        raise InvalidOrder("The body is not UTF-8 text.") from None
    except json.JSONDecodeError as error:
        raise InvalidOrder(f"The body is not valid JSON: {error.msg} at line {error.lineno} column {error.colno}.") from None
    except (ValueError, RecursionError) as error:
        raise InvalidOrder(f"The body is not valid JSON: {str(error)[:100]}.") from None
    if not isinstance(document, dict):
        raise InvalidOrder("The body must be a JSON object.")
    _storable(document)
    return document


def _receipt(status: int, integration_id: int, received: repository.Received, kind: str) -> Reply:
    data = contract.InboundReceipt(integration_id=integration_id, external_id=received.external_id, status=kind,
                                   received_at=received.received_at)
    return Reply(status=status, body=contract.InboundReceiptDocument(data=data).model_dump(mode="json"))


@dataclass(frozen=True)
class InboundHandlers:
    secrets: Secrets

    def _keys(self, integration: Integration) -> Keys:
        return Keys(self.secrets.inbound_secret(integration), self.secrets.credentials(integration) or {})

    async def receive(self, ctx: MessageContext, command: contract.ReceiveInboundOrder) -> Reply:
        integration = await repository.live_integration(ctx.conn, command.integration_id)
        adapter = ADAPTERS.get(integration.provider) if integration is not None else None
        headers = {name.lower(): value.get_secret_value() for name, value in command.headers.items()}
        if adapter is None:  # unknown, deleted, or a provider that takes no pushes
            hmac.new(DECOY_KEY, command.body, hashlib.sha256).digest()
            log.info("inbound_refused", integration_id=command.integration_id, reason="no such delivery integration")
            return _counted(integration.provider if integration is not None else metrics.UNKNOWN, "unauthorized",
                            UNAUTHORIZED)
        try:
            adapter.verify(command.body, headers, self._keys(integration), integration.id)
        except SignatureError as error:
            log.info("inbound_refused", integration_id=integration.id, reason=str(error))
            return _counted(integration.provider, "unauthorized", UNAUTHORIZED)
        if not integration.is_active:
            return _counted(integration.provider, "inactive", Reply(status=409, problem=problem(
                409, "integration-inactive", "Conflict",
                f"Integration {integration.id} is inactive; it takes orders again once set active (PATCH is_active).")))
        try:
            document = parse_document(command.body)
            parsed = adapter.parse(document, headers)
            if parsed.webhook_id is not None and len(parsed.webhook_id) > MAX_WEBHOOK_ID:
                raise InvalidOrder(f"The delivery id is longer than {MAX_WEBHOOK_ID} characters.")
        except InvalidOrder as error:
            await repository.add_rejection(ctx.conn, integration, headers.get("webhook-id", "")[:MAX_WEBHOOK_ID] or None,
                                           "; ".join([error.detail, *(f"{e.field}: {e.message}" for e in error.errors)]),
                                           command.body)
            log.info("inbound_rejected", integration_id=integration.id, error=error.detail)
            return _counted(integration.provider, "rejected", Reply(
                status=400, problem=problem(400, "invalid-order", "Invalid order", error.detail, error.errors or None)))
        return await self._record(ctx, integration, parsed, command.body, document)

    async def _record(self, ctx: MessageContext, integration: Integration, parsed: Parsed | Cancellation, body: bytes,
                      document: dict[str, Any]) -> Reply:
        if isinstance(parsed, Cancellation):
            handed = await hand_over_cancellation(ctx.conn, ctx.schema, ctx.source, integration, parsed, cause=ctx.envelope)
            if handed is None:
                log.info("inbound_cancel_unknown_order", integration_id=integration.id)
                return _counted(integration.provider, "unknown_order", Reply(status=404, problem=problem(
                    404, "unknown-order", "Not Found",
                    f"No order {parsed.external_id} was received on integration {integration.id}: nothing to cancel"
                    " (send it again once the order is in).")))
        else:
            try:
                handed = await hand_over(ctx.conn, ctx.schema, ctx.source, integration, parsed, body, document,
                                         cause=ctx.envelope, defer=ctx.defer)
            except OrderTooLarge as error:
                log.info("inbound_refused", integration_id=integration.id, reason="order too large")
                return _counted(integration.provider, "rejected", Reply(status=413, problem=problem(
                    413, "order-too-large", "Payload Too Large", str(error))))
        status = 202 if handed.kind in (RECEIVED, CANCELLED) else 200
        return _counted(integration.provider, INBOUND_OUTCOME_OF[handed.kind],
                        _receipt(status, integration.id, handed.received, handed.kind))


def _counted(provider: str, outcome: str, reply: Reply) -> Reply:
    """posint_inbound_requests_total. Counted as the handler answers, inside the command's
    transaction: a transaction that fails and is replayed counts its push again (rare)."""
    metrics.INBOUND.labels(provider, outcome).inc()
    return reply


RECEIVED, UPDATED, DUPLICATE, CANCELLED = "received", "updated", "duplicate", "cancelled"
SIZE_CHECK_FROM = 65_536
"""Bodies from this size on have their order measured (``limits.order_bytes``); smaller ones cannot
reach ``limits.ORDER_MAX_BYTES`` and pay nothing."""


class OrderTooLarge(Exception):
    """The order, as every record carrying it spells it out (raw data + normalized), would not fit
    the broker's record: refused before anything is written, never answered 202 and left stuck."""

    def __init__(self, size: int) -> None:
        super().__init__(f"The order takes {size} bytes once normalized (raw data and normalized order); "
                         f"at most {limits.ORDER_MAX_BYTES} fit.")
INBOUND_OUTCOME_OF = {RECEIVED: "accepted", UPDATED: "updated", DUPLICATE: "duplicate", CANCELLED: "cancelled"}


@dataclass(frozen=True)
class HandedOver:
    kind: str  # RECEIVED (new), UPDATED (changed copy, handed over again), CANCELLED or DUPLICATE (nothing done)
    received: repository.Received


async def hand_over(conn: asyncpg.Connection, schema: str, source: str, integration: Integration, parsed: Parsed, body: bytes,
                    document: dict[str, Any], *, cause: Envelope | None = None,
                    correlationid: str | None = None,
                    defer: Callable[[str, Envelope], None] | None = None) -> HandedOver:
    """Record one order from the platform (pushed to us, or fetched by a sync run) and hand it to
    the orders service, inside the caller's transaction: a new order or a changed copy emits
    ``order-received`` (outbox; through ``defer`` when given: a consumer handler's
    ``MessageContext.defer``, written with the reply in one statement); the same delivery again, or
    the same content under another delivery, changes nothing. The one path for every order that
    comes in."""
    external_id, webhook_id = parsed.order.external_id, parsed.webhook_id
    seen, stored = await repository.seen_and_stored(conn, integration.id, webhook_id, external_id)
    if seen is not None:  # the same message again
        return HandedOver(DUPLICATE, seen)
    normalized = parsed.order.model_dump(mode="json")
    if len(body) >= SIZE_CHECK_FROM and (size := limits.order_bytes(normalized, document)) > limits.ORDER_MAX_BYTES:
        raise OrderTooLarge(size)
    if stored is None:
        received = await repository.add_new_order(conn, integration, external_id, webhook_id, body, normalized)
        if received is None:  # a concurrent delivery of the same order committed first
            return await hand_over(conn, schema, source, integration, parsed, body, document, cause=cause,
                                   correlationid=correlationid, defer=defer)
        kind = RECEIVED
    else:
        await repository.add_delivery(conn, integration.id, webhook_id, external_id)
        if stored.normalized == normalized:  # the same order again under another message
            return HandedOver(DUPLICATE, stored)
        await repository.update_order(conn, integration, external_id, body, normalized)
        received, kind = stored, UPDATED  # handed over again: the orders service records the update
    event = contract.OrderReceived(
        integration_id=integration.id, provider=integration.provider, external_id=external_id,
        webhook_id=webhook_id, received_at=received.received_at, order=parsed.order,
        raw_data=document,
    )
    # The push carries no tenant; the integration's row does, and the orders service needs it.
    attrs = {"correlationid": correlationid} if correlationid else {}
    envelope = Envelope.wrap(event, source=source, type=contract.ORDER_RECEIVED, cause=cause,
                             subject=contract.order_subject(integration.id, external_id), tenantid=integration.tenant_id,
                             **attrs)
    if defer is not None:
        defer(topics.INTEGRATIONS_EVENTS, envelope)
    else:
        await outbox.add(conn, schema, topics.INTEGRATIONS_EVENTS, envelope)
    log.info("inbound_order_" + kind, integration_id=integration.id, tenant=integration.tenant_id)
    return HandedOver(kind, received)


async def hand_over_cancellation(conn: asyncpg.Connection, schema: str, source: str, integration: Integration,
                                 cancellation: Cancellation, *, cause: Envelope | None = None,
                                 correlationid: str | None = None) -> HandedOver | None:
    """The platform cancelled one of its orders (a push, or a sync listing it cancelled): inside the
    caller's transaction, remember it on the order and emit ``order-cancelled`` (outbox) on the
    order's key, behind its ``order-received``. Once per order: the same delivery again, or another
    message cancelling an order already cancelled, is a duplicate. None: no such order here."""
    external_id, webhook_id = cancellation.external_id, cancellation.webhook_id
    seen = await repository.delivered(conn, integration.id, webhook_id)
    if seen is not None:  # the same message again
        return HandedOver(DUPLICATE, seen)
    stored = await repository.stored_order(conn, integration.id, external_id)
    if stored is None:  # nothing recorded: a later copy, once the order is in, still cancels it
        return None
    await repository.add_delivery(conn, integration.id, webhook_id, external_id)
    if stored.cancelled_at is not None:
        return HandedOver(DUPLICATE, stored)
    await repository.mark_cancelled(conn, integration.id, external_id, cancellation.reason)
    event = orders_contract.PlatformOrderCancelled(
        integration_id=integration.id, external_id=external_id, reason=cancellation.reason,
        cancelled_at=cancellation.cancelled_at or datetime.now(timezone.utc))
    attrs = {"correlationid": correlationid} if correlationid else {}
    envelope = Envelope.wrap(event, source=source, type=orders_contract.PLATFORM_ORDER_CANCELLED, cause=cause,
                             subject=contract.order_subject(integration.id, external_id), tenantid=integration.tenant_id,
                             **attrs)
    await outbox.add(conn, schema, topics.INTEGRATIONS_EVENTS, envelope)
    log.info("inbound_order_cancelled", integration_id=integration.id, tenant=integration.tenant_id)
    return HandedOver(CANCELLED, stored)
