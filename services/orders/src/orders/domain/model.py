"""An external order as the service holds it; no I/O."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from orders.domain.lifecycle import Status

# How long a restaurant has to accept a new order, per provider: Uber Eats cancels an order not
# accepted within 11.5 minutes; the others' windows are not published, 8 minutes stays inside
# what DoorDash and Grubhub tablets allow. (Per-integration overrides come with the deadline timer.)
ACCEPT_WINDOW = {"ubereats": timedelta(minutes=11.5)}
DEFAULT_ACCEPT_WINDOW = timedelta(minutes=8)


def accept_by(provider: str, received_at: datetime) -> datetime:
    return received_at + ACCEPT_WINDOW.get(provider, DEFAULT_ACCEPT_WINDOW)


@dataclass(frozen=True)
class Order:
    id: int
    tenant_id: str
    integration_id: int
    provider: str
    external_id: str
    status: Status
    order: dict[str, Any]  # the normalized order (posint_common.contracts.inbound.NormalizedOrder, JSON form)
    raw_data: dict[str, Any]
    accept_by: datetime | None
    injection_status: str | None
    pos_order_id: str | None
    created_at: datetime
    updated_at: datetime


@dataclass(frozen=True)
class Change:
    """One line of an order's status history. An update of the order's content by the platform is
    a line from its status to the same status."""

    from_status: Status | None
    to_status: Status
    source: str
    reason: str | None
    at: datetime
