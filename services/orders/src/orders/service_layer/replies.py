"""The order as a reply, now or later: a held accept is answered from ``reply_waits`` in the
transaction that learns the POS's answer, or by the timer when its wait is over."""
from __future__ import annotations

import asyncpg

from posint_common import outbox
from posint_common.contracts import orders as contract
from posint_common.contracts.replies import REPLY, Reply
from posint_common.envelope import Envelope

from orders.adapters.repository import OrderRepository
from orders.domain.model import Order
from orders.service_layer import views


async def document(repository: OrderRepository, order: Order) -> Reply:
    detail = views.detail(order, await repository.history(order.id))
    return Reply(status=200, body=contract.ExternalOrderDocument(data=detail).model_dump(mode="json", by_alias=True))


async def send_held(conn: asyncpg.Connection, schema: str, source: str, tenant_id: str, wait: asyncpg.Record,
                    reply: Reply) -> None:
    """The reply to a command answered later: addressed as the consumer would have (causation = the
    command's ce_id, which the gateway matches on)."""
    command = Envelope(id=wait["command_id"], source="posint/gateway", type=contract.ACCEPT_EXTERNAL_ORDER,
                       correlationid=wait["correlationid"], tenantid=tenant_id, replyto=wait["reply_to"])
    await outbox.add(conn, schema, wait["reply_to"], Envelope.wrap(reply, source=source, type=REPLY, cause=command))


async def answer_waits(conn: asyncpg.Connection, schema: str, source: str, repository: OrderRepository,
                       order: Order) -> int:
    """Answer every request held for this order with the order as it now stands."""
    waits = await repository.take_waits(order.id)
    if waits:
        reply = await document(repository, order)
        for wait in waits:
            await send_held(conn, schema, source, order.tenant_id, wait, reply)
    return len(waits)
