"""An external order as the service holds it; no I/O."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from orders.domain.lifecycle import Status

# How long a restaurant has to accept a new order, per provider: Uber Eats cancels an order not
# accepted within 11.5 minutes; the others' windows are not published, 8 minutes stays inside
# what DoorDash and Grubhub tablets allow. An integration's ``accept_window_seconds`` overrides it.
ACCEPT_WINDOW = {"ubereats": timedelta(minutes=11.5)}
DEFAULT_ACCEPT_WINDOW = timedelta(minutes=8)
DEFAULT_PREP_TIME_MINUTES = 15
MAX_PREP_TIME_MINUTES = 180  # what accept takes and the POS is sent; an integration may say up to 240


def accept_by(provider: str, received_at: datetime, window_seconds: int | None = None) -> datetime:
    window = timedelta(seconds=window_seconds) if window_seconds else ACCEPT_WINDOW.get(provider, DEFAULT_ACCEPT_WINDOW)
    return received_at + window


@dataclass(frozen=True)
class IntegrationSettings:
    """What orders needs of an integration's config; the defaults for one it has not heard of."""

    auto_accept: bool = False
    prep_time_minutes: int = DEFAULT_PREP_TIME_MINUTES
    accept_window_seconds: int | None = None

    @property
    def prep_time(self) -> int:
        return min(self.prep_time_minutes, MAX_PREP_TIME_MINUTES)


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
    injection_attempt: int = 0
    injection_error: str | None = None
    prep_time_minutes: int | None = None
    platform_sync: dict[str, Any] | None = None  # the latest status push report (contracts.orders.PlatformSync, JSON form)


@dataclass(frozen=True)
class Change:
    """One line of an order's status history. An update of the order's content by the platform is
    a line from its status to the same status."""

    from_status: Status | None
    to_status: Status
    source: str
    reason: str | None
    at: datetime
