"""Secrets at rest: AES-256-GCM with a key ring from configuration.

Each value is sealed with the ring's first key under a fresh 96-bit nonce; the key's id is stored
beside the ciphertext, so keys rotate without downtime: put a new key first (new writes use it,
every key still decrypts), re-seal the stored values (``python -m integrations.keys reseal``), then
drop the old key. The associated data binds a value to its tenant, integration and purpose, so a
ciphertext copied to another row or column does not decrypt.
"""
from __future__ import annotations

import base64
import binascii
import json
import os
import re

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from integrations.domain.model import Sealed

VARIABLE = "INTEGRATIONS_ENCRYPTION_KEYS"
KEY_ID = re.compile(r"[A-Za-z0-9_-]{1,32}")
KEY_BYTES = 32
NONCE_BYTES = 12


class KeyRingError(ValueError):
    """A bad key setting; the message names the variable and never holds key material."""


class Undecryptable(Exception):
    """A stored value that no key of the ring opens: its key id is unknown, or it was tampered
    with or moved (wrong associated data)."""


def associated_data(tenant_id: str, integration_id: int, purpose: str) -> bytes:
    """Unambiguous encoding of what a value belongs to (JSON, so no separator can be forged)."""
    return json.dumps(["posint.integrations", tenant_id, integration_id, purpose]).encode()


class KeyRing:
    def __init__(self, keys: list[tuple[str, bytes]]) -> None:
        if not keys:
            raise KeyRingError(f"{VARIABLE}: give at least one key")
        self._keys = {key_id: AESGCM(key) for key_id, key in keys}
        self.primary = keys[0][0]

    @property
    def key_ids(self) -> frozenset[str]:
        return frozenset(self._keys)

    @classmethod
    def parse(cls, text: str) -> "KeyRing":
        """``kid1:base64key,kid0:base64key``: the first key seals, every key opens."""
        keys: list[tuple[str, bytes]] = []
        for number, entry in enumerate((part.strip() for part in text.split(",")), start=1):
            key_id, colon, encoded = entry.partition(":")
            if not colon or not KEY_ID.fullmatch(key_id):
                raise KeyRingError(f"{VARIABLE}: entry {number} is not '<key id>:<base64 key>' (key id: 1-32 of A-Za-z0-9_-)")
            if key_id in (known for known, _key in keys):
                raise KeyRingError(f"{VARIABLE}: key id '{key_id}' is given twice")
            try:
                key = base64.b64decode(encoded, validate=True)
            except (binascii.Error, ValueError):
                key = b""
            if len(key) != KEY_BYTES:
                raise KeyRingError(f"{VARIABLE}: key '{key_id}' is not the base64 of {KEY_BYTES} bytes")
            keys.append((key_id, key))
        return cls(keys)

    def seal(self, plaintext: bytes, aad: bytes) -> Sealed:
        nonce = os.urandom(NONCE_BYTES)
        return Sealed(self.primary, nonce + self._keys[self.primary].encrypt(nonce, plaintext, aad))

    def open(self, sealed: Sealed, aad: bytes) -> bytes:
        cipher = self._keys.get(sealed.key_id)
        if cipher is None:
            raise Undecryptable(f"key id '{sealed.key_id}' is not in {VARIABLE}")
        try:
            return cipher.decrypt(sealed.blob[:NONCE_BYTES], sealed.blob[NONCE_BYTES:], aad)
        except InvalidTag:
            raise Undecryptable("the value does not decrypt with its key and associated data") from None


def new_key_entry(key_id: str) -> str:
    """A fresh ``<key id>:<base64 key>`` entry for the setting."""
    if not KEY_ID.fullmatch(key_id):
        raise KeyRingError(f"key id '{key_id}' must be 1-32 of A-Za-z0-9_-")
    return f"{key_id}:{base64.b64encode(AESGCM.generate_key(bit_length=KEY_BYTES * 8)).decode()}"
