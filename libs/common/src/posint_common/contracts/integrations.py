"""Messages of the integrations service."""
from __future__ import annotations

from datetime import datetime, timezone

from pydantic import BaseModel, Field, field_serializer

from posint_common.contracts.types import PgId

LIST_INTEGRATIONS = "posint.integrations.list-integrations.v1"

MAX_PAGE_SIZE = 200
DEFAULT_PAGE_SIZE = 100


class ListIntegrations(BaseModel):
    """Query: a page of the tenant's integrations, ordered by id (tenant comes from the envelope)."""

    limit: int = Field(default=DEFAULT_PAGE_SIZE, ge=1, le=MAX_PAGE_SIZE)
    after_id: PgId | None = None


class IntegrationView(BaseModel):
    id: PgId
    name: str
    integration_type: str
    provider: str
    is_active: bool
    last_sync_at: datetime | None = None

    @field_serializer("last_sync_at")
    def _utc_seconds(self, value: datetime | None) -> str | None:
        return value.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ") if value else None


class IntegrationList(BaseModel):
    data: list[IntegrationView]
