"""First-start demo data: a tenant named ``demo`` with an API key and two integrations, connected
to the sandbox platforms when `make run` serves them."""
from __future__ import annotations

import json
from pathlib import Path

from gateway import SCHEMA as GATEWAY_SCHEMA
from gateway.bootstrap import MIGRATIONS as GATEWAY_MIGRATIONS
from gateway.tenants import create_tenant, issue_api_key, tenant_id_by_name
from integrations import SCHEMA as INTEGRATIONS_SCHEMA
from integrations.bootstrap import MIGRATIONS as INTEGRATIONS_MIGRATIONS
from integrations.adapters.vault import KeyRing
from integrations.seed import DEMO_PROVIDERS, DemoConnection, connect_demo_integrations, seed_demo_integrations
from posint_common import db
from sandbox.platforms.demo import DEMO_CREDENTIALS, demo_config

from posint_devstack.files import write_private

DEMO_TENANT = "demo"
DEMO_FILE = "demo-integrations.json"  # beside the API key: what `make order` needs (inbound secrets), 0600


async def seed_demo(database_url: str, api_key_file: Path, sandbox_url: str | None = None,
                    keys: KeyRing | None = None) -> str | None:
    """Ensure the demo tenant, its integrations and a key in ``api_key_file``; returns a new key or None.
    With ``sandbox_url`` (and the integrations key ring) the demo integrations are pointed at the
    sandbox platforms there, and their ids and inbound secrets kept in ``DEMO_FILE``."""
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
        if sandbox_url is not None and keys is not None:
            await connect_demo(integrations_pool, tenant_id, keys, sandbox_url, api_key_file.parent / DEMO_FILE)
        if api_key is not None:
            write_private(api_key_file, api_key + "\n")
        return api_key
    finally:
        await gateway_pool.close()
        await integrations_pool.close()


async def connect_demo(pool, tenant_id: str, keys: KeyRing, sandbox_url: str, demo_file: Path) -> None:
    """The demo integrations talk to the sandbox at ``sandbox_url``; their inbound secrets are kept
    from one start to the next (read back from ``demo_file``), so a secret given out stays valid."""
    try:
        previous = json.loads(demo_file.read_text()).get("integrations", {})
    except (FileNotFoundError, ValueError, AttributeError):
        previous = {}
    connections = [DemoConnection(provider, demo_config(provider, sandbox_url), DEMO_CREDENTIALS[provider],
                                  (previous.get(provider) or {}).get("inbound_secret"))
                   for provider, _synced, _config in DEMO_PROVIDERS]
    connected = await connect_demo_integrations(pool, tenant_id, keys, connections)
    document = {"sandbox_url": sandbox_url, "integrations": {
        item.provider: {"id": item.id, "inbound_path": f"/api/v1/integrations/{item.id}/inbound",
                        "inbound_secret": item.inbound_secret} for item in connected}}
    write_private(demo_file, json.dumps(document, indent=2) + "\n")
