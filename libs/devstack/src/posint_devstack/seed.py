"""First-start demo data: a tenant named ``demo`` with an API key and two integrations."""
from __future__ import annotations

from pathlib import Path

from gateway import SCHEMA as GATEWAY_SCHEMA
from gateway.bootstrap import MIGRATIONS as GATEWAY_MIGRATIONS
from gateway.tenants import create_tenant, issue_api_key, tenant_id_by_name
from integrations import SCHEMA as INTEGRATIONS_SCHEMA
from integrations.bootstrap import MIGRATIONS as INTEGRATIONS_MIGRATIONS
from integrations.seed import seed_demo_integrations
from posint_common import db

from posint_devstack.files import write_private

DEMO_TENANT = "demo"


async def seed_demo(database_url: str, api_key_file: Path) -> str | None:
    """Ensure the demo tenant, its integrations and a key in ``api_key_file``; returns a new key or None."""
    await db.migrate(database_url, GATEWAY_SCHEMA, GATEWAY_MIGRATIONS)
    await db.migrate(database_url, INTEGRATIONS_SCHEMA, INTEGRATIONS_MIGRATIONS)
    gateway_pool = await db.create_pool(database_url, GATEWAY_SCHEMA, max_size=1, application="devstack-seed")
    integrations_pool = await db.create_pool(database_url, INTEGRATIONS_SCHEMA, max_size=1, application="devstack-seed")
    try:
        api_key = None
        tenant_id = await tenant_id_by_name(gateway_pool, DEMO_TENANT)
        if tenant_id is None:
            tenant_id, api_key = await create_tenant(gateway_pool, DEMO_TENANT)
        elif not api_key_file.exists():
            async with gateway_pool.acquire() as conn:
                api_key = await issue_api_key(conn, tenant_id)
        await seed_demo_integrations(integrations_pool, tenant_id)
        if api_key is not None:
            write_private(api_key_file, api_key + "\n")
        return api_key
    finally:
        await gateway_pool.close()
        await integrations_pool.close()
