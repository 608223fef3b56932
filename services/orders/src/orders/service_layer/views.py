"""An order as the API and the events show it."""
from __future__ import annotations

from posint_common.contracts import orders as contract

from orders.domain.model import Change, Order


def external_order(order: Order) -> contract.ExternalOrder:
    normalized = {key: value for key, value in order.order.items() if key != "external_id"}
    return contract.ExternalOrder(
        id=order.id, integration_id=order.integration_id, external_id=order.external_id, status=order.status,
        raw_data=order.raw_data, **normalized, accept_by=order.accept_by, injection_status=order.injection_status,
        injection_error=order.injection_error, pos_order_id=order.pos_order_id, created_at=order.created_at,
    )


def detail(order: Order, history: list[Change]) -> contract.ExternalOrderDetail:
    changes = [contract.StatusChange(from_=c.from_status, to=c.to_status, source=c.source, reason=c.reason, at=c.at)
               for c in history]
    return contract.ExternalOrderDetail(**dict(external_order(order)), status_history=changes,
                                        platform_sync=order.platform_sync)


def event(order: Order) -> contract.OrderEvent:
    return contract.OrderEvent(tenant_id=order.tenant_id, integration_id=order.integration_id, order=external_order(order))
