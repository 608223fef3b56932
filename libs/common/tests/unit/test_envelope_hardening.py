"""Reading a record is total: it gives an envelope whose identity came from the record, or raises
InvalidEnvelope; foreign headers are not ours to judge."""
import pytest
from pydantic import BaseModel

from posint_common.envelope import Envelope, InvalidEnvelope


class Thing(BaseModel):
    name: str


def sent() -> Envelope:
    return Envelope.wrap(Thing(name="x"), source="posint/test", type="posint.test.thing.v1", subject="agg-1",
                         tenantid="t1", replyto="gateway.replies")


def test_foreign_headers_may_be_null_binary_or_repeated():
    envelope = sent()
    headers = envelope.headers() + [("traceparent", None), ("x-bin", b"\xff\x00"), ("x-bin", b"again")]
    assert Envelope.from_record(headers, envelope.value()) == envelope


@pytest.mark.parametrize("change, message", [
    (lambda h: [(n, None if n == "ce_tenantid" else v) for n, v in h], "ce_tenantid has no value"),
    (lambda h: [(n, None if n == "content-type" else v) for n, v in h], "content-type has no value"),
    (lambda h: h + [("ce_id", b"other")], "duplicate header ce_id"),
    (lambda h: h + [("content-type", b"application/json")], "duplicate header content-type"),
    (lambda h: [(n, v) for n, v in h if n != "ce_id"], "missing ce_id"),
    (lambda h: [(n, b"" if n == "ce_id" else v) for n, v in h], "ce_id"),
    (lambda h: [(n, b"a\x00b" if n == "ce_id" else v) for n, v in h], "control character"),
    (lambda h: [(n, b"a\nb" if n == "ce_subject" else v) for n, v in h], "control character"),
    (lambda h: [(n, b"x" * 300 if n == "ce_id" else v) for n, v in h], "longer than"),
    (lambda h: [(n, b"\xff" if n == "ce_source" else v) for n, v in h], "ce_source is not UTF-8"),
    (lambda h: [(n, b"yesterday" if n == "ce_time" else v) for n, v in h], "time"),
], ids=["null-ce", "null-content-type", "duplicate-id", "duplicate-content-type", "missing-id", "empty-id",
        "nul-in-id", "newline-in-subject", "long-id", "binary-source", "bad-time"])
def test_unreadable_headers_raise_invalid_envelope_naming_the_reason(change, message):
    envelope = sent()
    with pytest.raises(InvalidEnvelope, match=message):
        Envelope.from_record(change(envelope.headers()), envelope.value())


@pytest.mark.parametrize("value, message", [
    (b"{not json", "not JSON"),
    (b"\x00", "not JSON"),
    (b'{"name": "\xff"}', "not JSON"),
    (b"[1, 2]", "not a JSON object"),
    (b"null", "not a JSON object"),
])
def test_unreadable_values_raise_invalid_envelope(value, message):
    with pytest.raises(InvalidEnvelope, match=message):
        Envelope.from_record(sent().headers(), value)


def test_a_null_value_is_an_event_without_data():
    envelope = sent()
    assert Envelope.from_record(envelope.headers(), None).data == {}
