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


def held(source: str, tenant_id: str, wait: asyncpg.Record, reply: Reply) -> tuple[str, Envelope]:
    """The reply to a command answered later, as an outbox row (topic, envelope): addressed as the
    consumer would have (causation = the command's ce_id, which the gateway matches on)."""
    command = Envelope(id=wait["command_id"], source="posint/gateway", type=contract.ACCEPT_EXTERNAL_ORDER,
                       correlationid=wait["correlationid"], tenantid=tenant_id, replyto=wait["reply_to"])
    return wait["reply_to"], Envelope.wrap(reply, source=source, type=REPLY, cause=command)


async def send_held(conn: asyncpg.Connection, schema: str, source: str, tenant_id: str, wait: asyncpg.Record,
                    reply: Reply) -> None:
    await outbox.add_many(conn, schema, [held(source, tenant_id, wait, reply)])


async def held_replies(source: str, repository: OrderRepository, order: Order) -> list[tuple[str, Envelope]]:
    """The replies to every request held for this order, with the order as it now stands; the
    waits are taken (removed), so the caller writes these rows in the same transaction."""
    waits = await repository.take_waits(order.id)
    if not waits:
        return []
    reply = await document(repository, order)
    return [held(source, order.tenant_id, wait, reply) for wait in waits]
