"""make run gives every service one TRANSPORT_KEYS ring (sealed messages on the broker), kept in
``.run/transport-keys``, readable by its owner only, the same across runs; the environment wins."""
import os
import stat

from posint_common.envelope import TransportKeyRing
from posint_common.vault import new_key_entry
from posint_devstack.launcher import Config, Stack


def stack(tmp_path) -> Stack:
    return Stack(Config.from_env({"POSINT_RUN_DIR": str(tmp_path)}))


def test_the_transport_ring_is_generated_private_and_kept(tmp_path, monkeypatch):
    monkeypatch.delenv("TRANSPORT_KEYS", raising=False)
    previous = os.umask(0)
    try:
        first = stack(tmp_path).transport_keys()
    finally:
        os.umask(previous)
    assert TransportKeyRing.parse(first).primary == "dev1"
    assert stat.S_IMODE((tmp_path / "transport-keys").stat().st_mode) == 0o600
    assert stack(tmp_path).transport_keys() == first


def test_the_environment_wins(tmp_path, monkeypatch):
    given = new_key_entry("ops1")
    monkeypatch.setenv("TRANSPORT_KEYS", given)
    assert stack(tmp_path).transport_keys() == given and not (tmp_path / "transport-keys").exists()
