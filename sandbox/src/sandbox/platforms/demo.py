"""The credentials and ids the fake platforms accept by default: what `make run` seeds into the demo
integrations (never real secrets: these fakes guard nothing)."""
from __future__ import annotations

import base64

DEMO_CREDENTIALS: dict[str, dict[str, str]] = {
    "doordash": {"developer_id": "demo-developer", "key_id": "demo-key",
                 "signing_secret": base64.urlsafe_b64encode(b"demo-doordash-signing-secret-32b").decode().rstrip("=")},
    "ubereats": {"client_id": "demo-uber-client", "client_secret": "demo-uber-secret"},
    "grubhub": {"client_id": "demo-grubhub-client", "secret_key": "demo-grubhub-secret"},
    "custom": {"api_key": "demo-custom-key"},
    "quickbooks": {"client_id": "demo-qbo-client", "client_secret": "demo-qbo-secret", "refresh_token": "demo-qbo-refresh"},
    "xero": {"client_id": "demo-xero-client", "client_secret": "demo-xero-secret", "refresh_token": "demo-xero-refresh"},
}
DEMO_IDS: dict[str, dict[str, str]] = {
    "doordash": {"store_id": "demo-store"},
    "ubereats": {"store_id": "demo-uber-store"},
    "grubhub": {"merchant_id": "demo-merchant"},
    "custom": {},
    "quickbooks": {"realm_id": "demo-realm"},
    "xero": {"xero_tenant_id": "demo-xero-tenant"},
}


def demo_config(provider: str, base_url: str) -> dict[str, str]:
    """The integration ``config`` that points ``provider`` at its fake under ``base_url``
    (the sandbox's address, e.g. ``http://127.0.0.1:8090``)."""
    root = f"{base_url.rstrip('/')}/{provider}"
    config = {**DEMO_IDS[provider], "api_base_url": root}
    if provider == "ubereats":
        config["token_url"] = f"{root}/oauth/v2/token"
    elif provider == "quickbooks":
        config["token_url"] = f"{root}/oauth2/v1/tokens/bearer"
    elif provider == "xero":
        config["token_url"] = f"{root}/connect/token"
    return config
