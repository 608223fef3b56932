"""The integrations service's key ring (posint_common.vault) and the associated data that binds
each secret to its tenant, integration and purpose. Rotation: ``python -m integrations.keys``."""
from __future__ import annotations

from posint_common import vault
from posint_common.vault import KeyRingError, Undecryptable, new_key_entry

__all__ = ["VARIABLE", "KeyRing", "KeyRingError", "Undecryptable", "associated_data", "new_key_entry"]

VARIABLE = "INTEGRATIONS_ENCRYPTION_KEYS"


class KeyRing(vault.KeyRing):
    variable = VARIABLE


def associated_data(tenant_id: str, integration_id: int, purpose: str) -> bytes:
    return vault.associated_data("posint.integrations", tenant_id, integration_id, purpose)
