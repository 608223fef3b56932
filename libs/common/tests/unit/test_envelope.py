import pytest
from pydantic import BaseModel

from posint_common.envelope import CONTENT_TYPE_HEADER, Envelope, InvalidEnvelope


class Thing(BaseModel):
    name: str
    count: int


def test_roundtrip_through_kafka_headers_and_value():
    sent = Envelope.wrap(Thing(name="x", count=2), source="posint/test", type="posint.test.thing.v1", subject="agg-1",
                         tenantid="t1", correlationid="req-1", replyto="gateway.replies")
    headers = sent.headers()
    names = {name for name, _ in headers}
    assert {"ce_id", "ce_source", "ce_type", "ce_specversion", "ce_time", "ce_subject", "ce_tenantid",
            "ce_correlationid", "ce_replyto", CONTENT_TYPE_HEADER} <= names
    received = Envelope.from_record(headers, sent.value())
    assert received == sent
    assert received.parse(Thing) == Thing(name="x", count=2)


def test_subject_is_the_kafka_key():
    assert Envelope(source="s", type="t", subject="order-9").key == b"order-9"
    assert Envelope(source="s", type="t").key is None


def test_wrap_carries_correlation_causation_and_tenant_from_the_cause():
    cause = Envelope(source="s", type="t", correlationid="req-7", tenantid="tenant-a")
    effect = Envelope.wrap(Thing(name="y", count=1), source="s2", type="t2", cause=cause)
    assert (effect.correlationid, effect.causationid, effect.tenantid) == ("req-7", cause.id, "tenant-a")


def test_cause_without_correlation_id_correlates_on_its_own_id():
    cause = Envelope(source="s", type="t")
    assert Envelope.wrap(Thing(name="y", count=1), source="s2", type="t2", cause=cause).correlationid == cause.id


@pytest.mark.parametrize(
    "headers, value",
    [
        ([], b"{}"),
        ([("ce_specversion", b"0.3"), ("ce_id", b"1"), ("ce_source", b"s"), ("ce_type", b"t")], b"{}"),
        ([("ce_specversion", b"1.0"), ("ce_id", b"1"), ("ce_source", b"s"), ("ce_type", b"t")], b"{not json"),
        ([("ce_specversion", b"1.0"), ("ce_id", b"1"), ("ce_source", b"s")], b"{}"),
        ([("ce_specversion", b"1.0"), ("ce_id", b"\xff"), ("ce_source", b"s"), ("ce_type", b"t")], b"{}"),
        ([("ce_specversion", b"1.0"), ("ce_id", b"1"), ("ce_source", b"s"), ("ce_type", b"t")], b"[1, 2]"),
    ],
    ids=["no-headers", "old-specversion", "bad-json", "no-type", "non-utf8", "non-object-data"],
)
def test_unreadable_records_raise_invalid_envelope(headers, value):
    with pytest.raises(InvalidEnvelope):
        Envelope.from_record(headers, value)
