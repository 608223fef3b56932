"""Sealed envelopes: a message that carries secrets crosses the broker as AES-GCM ciphertext bound to
its envelope, with the key id in ``ce_posintsealed``; every key of ``TRANSPORT_KEYS`` opens it."""
import base64

import pytest

from posint_common.envelope import Envelope, TransportKeyRing
from posint_common.vault import Undecryptable, new_key_entry

SECRET = "cs-SECRET-on-the-wire"
OLD, NEW = new_key_entry("old"), new_key_entry("new")


def message(**attrs) -> Envelope:
    return Envelope(source="posint/gateway", type="posint.test.v1", tenantid="t-1",
                    data={"credentials": {"client_secret": SECRET}}, **attrs)


def test_a_sealed_record_holds_no_secret_and_names_its_key():
    ring = TransportKeyRing.parse(NEW)
    sealed = message().sealed(ring)
    headers = dict(sealed.headers())
    assert headers["ce_posintsealed"] == b"new"
    assert SECRET.encode() not in sealed.value() and SECRET not in sealed.model_dump_json()
    read = Envelope.from_record(sealed.headers(), sealed.value())
    opened = read.opened(ring)
    assert opened.data == {"credentials": {"client_secret": SECRET}} and opened.was_sealed
    assert opened.posintsealed is None and not read.was_sealed


def test_the_outbox_form_opens_too():
    ring = TransportKeyRing.parse(NEW)
    stored = message().sealed(ring).model_dump_json()  # what an outbox row holds
    assert Envelope.model_validate_json(stored).opened(ring).data["credentials"]["client_secret"] == SECRET


def test_rotation_a_value_sealed_with_the_old_key_opens_once_a_new_key_is_first():
    sealed = message().sealed(TransportKeyRing.parse(OLD))
    rotated = TransportKeyRing.parse(f"{NEW},{OLD}")
    assert sealed.opened(rotated).data["credentials"]["client_secret"] == SECRET
    assert message().sealed(rotated).posintsealed == "new"


@pytest.mark.parametrize("change", [
    {"id": "another-id"}, {"type": "posint.other.v1"}, {"tenantid": "t-2"}, {"source": "posint/other"},
])
def test_a_sealed_value_moved_to_another_envelope_does_not_open(change):
    ring = TransportKeyRing.parse(NEW)
    sealed = message().sealed(ring)
    with pytest.raises(Undecryptable):
        sealed.model_copy(update=change).opened(ring)


def test_tampered_unknown_key_or_no_ring_does_not_open():
    ring = TransportKeyRing.parse(NEW)
    sealed = message().sealed(ring)
    blob = bytearray(base64.b64decode(sealed.data["sealed"]))
    blob[-1] ^= 1
    tampered = sealed.model_copy(update={"data": {"sealed": base64.b64encode(bytes(blob)).decode()}})
    for bad, ring_used in ((tampered, ring), (sealed, TransportKeyRing.parse(OLD)), (sealed, None),
                           (sealed.model_copy(update={"data": {"sealed": "not base64!"}}), ring),
                           (sealed.model_copy(update={"data": {}}), ring)):
        with pytest.raises(Undecryptable):
            bad.opened(ring_used)


def test_a_bad_transport_keys_setting_is_named_without_key_material(monkeypatch, capsys):
    from posint_common.settings import ServiceSettings, load_settings

    key = NEW.split(":", 1)[1]
    monkeypatch.setenv("TRANSPORT_KEYS", f"{NEW},bad id:{key}")
    with pytest.raises(SystemExit):
        load_settings(ServiceSettings, database_url="postgresql://x", kafka_bootstrap_servers="127.0.0.1:1")
    error = capsys.readouterr().err
    assert "TRANSPORT_KEYS" in error and key not in error
    monkeypatch.setenv("TRANSPORT_KEYS", f"{NEW},{OLD}")
    settings = load_settings(ServiceSettings, database_url="postgresql://x", kafka_bootstrap_servers="127.0.0.1:1")
    assert TransportKeyRing.from_setting(settings.transport_keys).primary == "new"
    monkeypatch.delenv("TRANSPORT_KEYS")
    assert load_settings(ServiceSettings, database_url="postgresql://x", kafka_bootstrap_servers="127.0.0.1:1").transport_keys is None
