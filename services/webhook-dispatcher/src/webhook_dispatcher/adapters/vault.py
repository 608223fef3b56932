"""The dispatcher's key ring (posint_common.vault): each endpoint's signing secret is bound to its
tenant and endpoint, so a ciphertext moved to another row does not open."""
from __future__ import annotations

from posint_common import vault

VARIABLE = "WEBHOOKS_ENCRYPTION_KEYS"


class KeyRing(vault.KeyRing):
    variable = VARIABLE


def associated_data(tenant_id: str, endpoint_id: int) -> bytes:
    return vault.associated_data("posint.webhooks", tenant_id, endpoint_id, "secret")
