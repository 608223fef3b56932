"""`make run` connects the demo integrations to the sandbox platforms: config pointing at them, the
credentials they accept sealed like the API seals them, and each inbound secret kept from one
start to the next in a private file (what `make order` signs with)."""
from __future__ import annotations

import json
import stat

from gateway import SCHEMA as GATEWAY_SCHEMA
from gateway.tenants import tenant_id_by_name
from integrations import SCHEMA as INTEGRATIONS_SCHEMA
from integrations.adapters.repository import IntegrationRepository
from integrations.adapters.vault import KeyRing, new_key_entry
from integrations.service_layer.secrets import Secrets
from posint_common import db
from posint_devstack.seed import DEMO_FILE, DEMO_TENANT, seed_demo
from sandbox.platforms.demo import DEMO_CREDENTIALS


async def stored(database_url: str, keys: KeyRing, integration_id: int):
    gateway = await db.create_pool(database_url, GATEWAY_SCHEMA, max_size=1, application="test")
    pool = await db.create_pool(database_url, INTEGRATIONS_SCHEMA, max_size=1, application="test")
    try:
        tenant_id = await tenant_id_by_name(gateway, DEMO_TENANT)
        async with pool.acquire() as conn:
            integration = await IntegrationRepository(conn, tenant_id).get(integration_id)
        secrets = Secrets(keys)
        return integration.config, secrets.credentials(integration), secrets.inbound_secret(integration)
    finally:
        await gateway.close()
        await pool.close()


async def test_demo_integrations_point_at_the_sandbox_and_keep_their_inbound_secret(infra, tmp_path):
    keys = KeyRing.parse(new_key_entry("t1"))
    key_file = tmp_path / "api-key"
    await seed_demo(infra.database_url, key_file, "http://127.0.0.1:1234", keys)
    demo_file = tmp_path / DEMO_FILE
    assert stat.S_IMODE(demo_file.stat().st_mode) == 0o600
    first = json.loads(demo_file.read_text())
    doordash = first["integrations"]["doordash"]
    assert doordash["inbound_secret"].startswith("whsec_")
    assert doordash["inbound_path"] == f"/api/v1/integrations/{doordash['id']}/inbound"
    config, credentials, inbound_secret = await stored(infra.database_url, keys, doordash["id"])
    assert config["api_base_url"] == "http://127.0.0.1:1234/doordash" and config["store_id"] == "demo-store"
    assert credentials == DEMO_CREDENTIALS["doordash"] and inbound_secret == doordash["inbound_secret"]
    quickbooks = first["integrations"]["quickbooks"]
    config, credentials, _ = await stored(infra.database_url, keys, quickbooks["id"])
    assert config["token_url"] == "http://127.0.0.1:1234/quickbooks/oauth2/v1/tokens/bearer"
    assert credentials == DEMO_CREDENTIALS["quickbooks"]

    await seed_demo(infra.database_url, key_file, "http://127.0.0.1:5678", keys)  # the next `make run`
    second = json.loads(demo_file.read_text())
    assert second["integrations"] == first["integrations"]  # same ids, same secrets
    config, _, inbound_secret = await stored(infra.database_url, keys, doordash["id"])
    assert config["api_base_url"] == "http://127.0.0.1:5678/doordash" and inbound_secret == doordash["inbound_secret"]
