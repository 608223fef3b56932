"""Secrets at rest: AES-256-GCM with a key ring from configuration, for every service that keeps
secrets (integrations: credentials; webhook-dispatcher: signing secrets).

Each value is sealed with the ring's first key under a fresh 96-bit nonce; the key's id is stored
beside the ciphertext, so keys rotate without downtime: put a new key first (new writes use it,
every key still decrypts), re-seal the stored values, then drop the old key. The caller's
associated data binds a value to what it belongs to, so a ciphertext copied to another row or
column does not decrypt. A service subclasses ``KeyRing`` to name its own setting in errors.
"""
from __future__ import annotations

import base64
import binascii
import json
import os
import re
from dataclasses import dataclass
from pathlib import Path

from cryptography.exceptions import InvalidTag
from pydantic import SecretStr
from pydantic_core import PydanticCustomError
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

KEY_ID = re.compile(r"[A-Za-z0-9_-]{1,32}")
KEY_BYTES = 32
NONCE_BYTES = 12


@dataclass(frozen=True)
class Sealed:
    """A secret as stored: the id of the key that sealed it and nonce + ciphertext + tag."""

    key_id: str
    blob: bytes


class KeyRingError(ValueError):
    """A bad key setting; the message names the variable and never holds key material."""


class Undecryptable(Exception):
    """A stored value that no key of the ring opens: its key id is unknown, or it was tampered
    with or moved (wrong associated data)."""


def associated_data(*parts: str | int) -> bytes:
    """Unambiguous encoding of what a value belongs to (JSON, so no separator can be forged)."""
    return json.dumps(list(parts)).encode()


class KeyRing:
    variable = "ENCRYPTION_KEYS"  # the setting's name, for messages; each service's subclass names its own

    def __init__(self, keys: list[tuple[str, bytes]]) -> None:
        if not keys:
            raise KeyRingError(f"{self.variable}: give at least one key")
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
                raise KeyRingError(f"{cls.variable}: entry {number} is not '<key id>:<base64 key>' (key id: 1-32 of A-Za-z0-9_-)")
            if key_id in (known for known, _key in keys):
                raise KeyRingError(f"{cls.variable}: key id '{key_id}' is given twice")
            try:
                key = base64.b64decode(encoded, validate=True)
            except (binascii.Error, ValueError):
                key = b""
            if len(key) != KEY_BYTES:
                raise KeyRingError(f"{cls.variable}: key '{key_id}' is not the base64 of {KEY_BYTES} bytes")
            keys.append((key_id, key))
        return cls(keys)

    def seal(self, plaintext: bytes, aad: bytes) -> Sealed:
        nonce = os.urandom(NONCE_BYTES)
        return Sealed(self.primary, nonce + self._keys[self.primary].encrypt(nonce, plaintext, aad))

    def open(self, sealed: Sealed, aad: bytes) -> bytes:
        cipher = self._keys.get(sealed.key_id)
        if cipher is None:
            raise Undecryptable(f"key id '{sealed.key_id}' is not in {self.variable}")
        try:
            return cipher.decrypt(sealed.blob[:NONCE_BYTES], sealed.blob[NONCE_BYTES:], aad)
        except InvalidTag:
            raise Undecryptable("the value does not decrypt with its key and associated data") from None

    @classmethod
    def checked_setting(cls, value: SecretStr) -> SecretStr:
        """For a settings validator: the value parses as a key ring, or a settings error whose
        message names no key material (the variable is named by the settings loader)."""
        try:
            cls.parse(value.get_secret_value())
        except KeyRingError as error:
            raise PydanticCustomError("key_ring", str(error).removeprefix(f"{cls.variable}: ")) from None
        return value


def new_key_entry(key_id: str) -> str:
    """A fresh ``<key id>:<base64 key>`` entry for a key ring setting."""
    if not KEY_ID.fullmatch(key_id):
        raise KeyRingError(f"key id '{key_id}' must be 1-32 of A-Za-z0-9_-")
    return f"{key_id}:{base64.b64encode(AESGCM.generate_key(bit_length=KEY_BYTES * 8)).decode()}"


def ensure_dev_keys(path: Path, ring: type[KeyRing] = KeyRing) -> str:
    """For ``make run``: a key ring setting kept in ``path`` (mode 0600 from its first byte),
    created with one fresh key on first use, so secrets sealed in earlier runs still open."""
    if not path.exists():
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as file:
            file.write(new_key_entry("dev1") + "\n")
    value = path.read_text().strip()
    ring.parse(value)  # a damaged file is a clear error, not a service that cannot start
    return value


if __name__ == "__main__":  # python -m posint_common.vault new <key id>: an entry for any key ring setting
    import sys

    if len(sys.argv) != 3 or sys.argv[1] != "new":
        raise SystemExit("usage: python -m posint_common.vault new <key id>")
    try:
        print(new_key_entry(sys.argv[2]))
    except KeyRingError as error:
        raise SystemExit(f"error: {error}") from None
