"""Query handlers: read-only, so they run concurrently and need no inbox."""
from __future__ import annotations

from posint_common.consumer import MessageContext
from posint_common.contracts import orders as contract
from posint_common.contracts.replies import Reply

from orders.adapters.repository import OrderRepository
from orders.service_layer import views
from orders.service_layer.handlers import not_found


def body(model) -> dict:
    """Every key kept, null included: the shapes are fixed; ``from`` by its alias."""
    return model.model_dump(mode="json", by_alias=True)


async def list_orders(ctx: MessageContext, query: contract.ListExternalOrders) -> Reply:
    page = await OrderRepository(ctx.conn, ctx.envelope.tenantid).page(
        query.limit, query.after_id, query.integration_id,
        [status.value for status in query.statuses] if query.statuses else None,
        query.created_after, query.created_before,
    )
    shown, size = [], 0
    for order in page:
        view = views.external_order(order)
        size += len(view.model_dump_json())
        if shown and size > contract.PAGE_BYTES:  # never an empty page: one order always fits a record
            return Reply(status=200, body=body(contract.ExternalOrderList(data=shown)), headers={contract.PAGE_CONTINUES: "1"})
        shown.append(view)
    return Reply(status=200, body=body(contract.ExternalOrderList(data=shown)))


async def get_order(ctx: MessageContext, query: contract.ExternalOrderRef) -> Reply:
    repository = OrderRepository(ctx.conn, ctx.envelope.tenantid)
    order = await repository.get(query.id)
    if order is None:
        return not_found(query.id)
    return Reply(status=200, body=body(contract.ExternalOrderDocument(data=views.detail(order, await repository.history(order.id)))))
