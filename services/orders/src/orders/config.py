"""The orders service's settings: the shared ones plus how long an accept waits for the POS and how
often the timer looks for due deadlines."""
from __future__ import annotations

from pydantic import Field

from posint_common.settings import ServiceSettings


class OrdersSettings(ServiceSettings):
    # How long the 200 of an accept (or retry-injection) waits for the POS's answer before it says
    # injection "pending"; keep it under the gateway's REPLY_TIMEOUT_MS. 0: answer at once.
    orders_accept_wait_ms: int = Field(default=3_000, ge=0, le=60_000)
    # The timer's period: acceptance deadlines and accept waits fire at most this late.
    orders_timer_interval_ms: int = Field(default=100, ge=10, le=60_000)
    # posint_orders_unaccepted_near_deadline counts received orders whose accept_by is closer than this.
    orders_near_deadline_s: int = Field(default=120, ge=1, le=86_400)


def orders_settings(settings: ServiceSettings) -> OrdersSettings:
    """Callers (tests, the launcher) may pass the shared settings: the orders ones take their defaults."""
    if isinstance(settings, OrdersSettings):
        return settings
    return OrdersSettings.model_validate(settings.model_dump())
