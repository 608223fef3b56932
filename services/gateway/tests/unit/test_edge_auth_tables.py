"""The authenticator's caches stay bounded whatever arrives: the oldest entry goes when one is full."""
from gateway import tenants


def test_a_full_table_drops_its_oldest_entry(monkeypatch):
    monkeypatch.setattr(tenants, "MAX_CACHED_KEYS", 3)
    table = tenants._ExpiringTable(seconds=60)
    for key in "abcd":
        table.put(key, key.upper(), now=0)
    assert [table.get(key, now=1) for key in "abcd"] == [None, "B", "C", "D"]


def test_entries_expire_and_a_zero_lifetime_caches_nothing():
    table = tenants._ExpiringTable(seconds=5)
    table.put("k", "v", now=0)
    assert (table.get("k", now=4.9), table.get("k", now=5)) == ("v", None)
    off = tenants._ExpiringTable(seconds=0)
    off.put("k", "v", now=0)
    assert off.get("k", now=0) is None


def test_only_key_shaped_credentials_are_looked_up():
    assert tenants.KEY_SHAPE.fullmatch("pk_" + "A" * 43)
    for credential in ("", "pk_short", "pk_" + "a" * 200, "pk_caf\u00e9" + "a" * 20, "pk_\udcff" + "a" * 20, "Bearer pk_" + "a" * 43):
        assert not tenants.KEY_SHAPE.fullmatch(credential)
