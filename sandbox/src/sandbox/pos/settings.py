"""Settings of ``python -m sandbox.pos`` (environment variables)."""
from __future__ import annotations

from pydantic import Field

from posint_common.settings import KafkaSettings


class PosSettings(KafkaSettings):
    pos_control_port: int = Field(default=8095, ge=0, le=65535)  # the control API on 127.0.0.1; 0 picks one
    pos_group: str = Field(default="pos.reference", min_length=1)  # its consumer group on pos.orders
    pos_delay_ms: int = Field(default=0, ge=0, le=600_000)  # wait this long before each answer
    pos_fail_reason: str | None = None  # set: refuse every injection with this reason
    health_port: int | None = Field(default=None, ge=0, le=65535)  # /readyz here too (the launcher polls it)
