"""Messages about tenants, emitted by the gateway which owns API keys."""
from __future__ import annotations

from pydantic import BaseModel

TENANT_CREATED = "posint.gateway.tenant-created.v1"


class TenantCreated(BaseModel):
    tenant_id: str
    name: str
