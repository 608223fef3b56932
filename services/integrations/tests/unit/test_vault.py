"""The key ring: its setting's format, AES-GCM bound to tenant, integration and purpose, rotation."""
import base64
import stat

import pytest

from integrations.adapters.vault import KeyRing, KeyRingError, Undecryptable, associated_data, new_key_entry
from integrations.keys import ensure_dev_keys

KEY = base64.b64encode(b"k" * 32).decode()


def test_the_first_key_seals_and_every_key_opens():
    old, new = new_key_entry("old"), new_key_entry("new")
    aad = associated_data("tenant-1", 7, "credentials")
    sealed_before = KeyRing.parse(old).seal(b"s3cret", aad)
    rotated = KeyRing.parse(f"{new},{old}")
    assert sealed_before.key_id == "old" and rotated.open(sealed_before, aad) == b"s3cret"
    sealed_after = rotated.seal(b"s3cret", aad)
    assert sealed_after.key_id == "new" and b"s3cret" not in sealed_after.blob
    with pytest.raises(Undecryptable, match="'new' is not in INTEGRATIONS_ENCRYPTION_KEYS"):
        KeyRing.parse(old).open(sealed_after, aad)


def test_a_value_opens_only_with_its_own_associated_data():
    keys = KeyRing.parse(new_key_entry("k"))
    sealed = keys.seal(b"s3cret", associated_data("tenant-1", 7, "credentials"))
    for tenant, integration, purpose in (("tenant-2", 7, "credentials"), ("tenant-1", 8, "credentials"),
                                         ("tenant-1", 7, "inbound_secret")):
        with pytest.raises(Undecryptable):
            keys.open(sealed, associated_data(tenant, integration, purpose))


def test_each_seal_has_its_own_nonce():
    keys = KeyRing.parse(new_key_entry("k"))
    aad = associated_data("t", 1, "credentials")
    assert keys.seal(b"same", aad).blob != keys.seal(b"same", aad).blob


@pytest.mark.parametrize("setting, message", [
    ("", "entry 1 is not"),
    (KEY, "entry 1 is not"),
    (f"bad id!:{KEY}", "entry 1 is not"),
    (f"a:{KEY},a:{KEY}", "'a' is given twice"),
    ("a:not*base64", "'a' is not the base64 of 32 bytes"),
    (f"a:{KEY},b:{base64.b64encode(b'short').decode()}", "'b' is not the base64 of 32 bytes"),
])
def test_a_bad_setting_names_the_variable_and_never_the_key(setting, message):
    with pytest.raises(KeyRingError) as caught:
        KeyRing.parse(setting)
    assert str(caught.value).startswith("INTEGRATIONS_ENCRYPTION_KEYS: ") and message in str(caught.value)
    assert KEY not in str(caught.value) and "short" not in str(caught.value)


def test_the_dev_key_file_is_private_and_kept(tmp_path):
    path = tmp_path / "integrations-keys"
    first = ensure_dev_keys(path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert ensure_dev_keys(path) == first and KeyRing.parse(first).primary == "dev1"
