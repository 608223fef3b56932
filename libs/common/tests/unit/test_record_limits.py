"""The size limits line up (posint_common.contracts.limits): the records a 1 MiB inbound order makes
(its command, its hand-over and order events, the API's replies about it, a dead letter) fit
KAFKA_MAX_RECORD_BYTES in the worst case, and the stack's clients are built with that one number."""
from __future__ import annotations

import json
from datetime import datetime, timezone

import pytest
from aiokafka.record.default_records import DefaultRecordBatchBuilder
from pydantic import ValidationError

from posint_common import kafka
from posint_common.contracts import inbound, limits, orders, replies
from posint_common.envelope import MAX_ATTRIBUTE_CHARS, Envelope
from posint_common.settings import KafkaSettings

MIB = 1_048_576
AT = datetime(2026, 1, 4, 18, 0, tzinfo=timezone.utc)


def record_bytes(envelope: Envelope) -> int:
    """The record as the producer counts it against max_request_size (batch framing included)."""
    return DefaultRecordBatchBuilder.estimate_size_in_bytes(envelope.key, envelope.value(), envelope.headers())


def longest(message, type_: str) -> Envelope:
    """``message`` in an envelope whose every attribute is as long as a record may carry."""
    attr = "a" * MAX_ATTRIBUTE_CHARS
    return Envelope.wrap(message, source=attr, type=type_, subject=attr, id=attr, correlationid=attr, causationid=attr,
                         tenantid=attr, replyto=attr)


def bloated_custom_order() -> tuple[dict, bytes]:
    """A 1 MiB ``custom`` push whose normalized form grows the most: 200 items of 50 modifiers, each
    leaving out what the normalized order spells out (external_id, quantity, unit_price), the rest of
    the MiB in their names."""
    items = [{"name": "i", "quantity": 1, "unit_price": "0", "modifiers": [{"name": "m"} for _ in range(50)]}
             for _ in range(200)]
    document = {"external_id": "bloat", "placed_at": "2026-01-04T18:00:00Z", "fulfillment": "pickup", "items": items,
                "subtotal": "0", "tax": "0", "total": "0", "currency": "USD"}
    room = MIB - len(json.dumps(document, separators=(",", ":")))
    for item in items:
        for modifier in item["modifiers"]:
            grow = min(199, room)
            modifier["name"] += "x" * grow
            room -= grow
    assert room == 0
    body = json.dumps(document, separators=(",", ":")).encode()
    assert len(body) == MIB
    return document, body


def test_the_command_of_a_1_mib_push_with_the_longest_headers_fits_a_record():
    headers = {name: '"' * inbound.MAX_HEADER_CHARS for name in inbound.INBOUND_HEADERS}  # each escaped to 2 bytes
    command = inbound.ReceiveInboundOrder(integration_id=2**63 - 1, body=b"", headers=headers)
    command = command.model_copy(update={"body": bytes(limits.INBOUND_MAX_BYTES)})
    envelope = longest(command, inbound.RECEIVE_INBOUND_ORDER)
    assert len(envelope.data["body"]) == 1_398_104  # base64 of 1 MiB
    assert record_bytes(envelope) < 1.4 * MIB < limits.MAX_RECORD_BYTES


def test_the_worst_custom_order_fits_its_budget_and_every_record_that_carries_it():
    document, _ = bloated_custom_order()
    order = inbound.NormalizedOrder.model_validate(document)
    normalized = order.model_dump(mode="json")  # as the integrations service records it
    size = limits.order_bytes(normalized, document)
    assert 2.4 * MIB < size <= limits.ORDER_MAX_BYTES

    received = inbound.OrderReceived(integration_id=2**63 - 1, provider="custom", external_id="bloat",
                                     webhook_id="w" * 256, received_at=AT, order=order, raw_data=document)
    assert record_bytes(longest(received, inbound.ORDER_RECEIVED)) <= limits.MAX_RECORD_BYTES

    shown = orders.ExternalOrder(id=2**63 - 1, integration_id=2**63 - 1, external_id="bloat", status="received",
                                 raw_data=document, **{k: v for k, v in normalized.items() if k != "external_id"},
                                 accept_by=AT, injection_status="failed", injection_error="e" * 2_000,
                                 pos_order_id="p" * 128, created_at=AT)
    rejected = orders.OrderRejected(tenant_id="t" * 64, integration_id=1, order=shown, reason_code="ITEM_UNAVAILABLE",
                                    detail="d" * 500, unavailable_item_ids=["i" * 128] * 200, rejected_at=AT)
    assert record_bytes(longest(rejected, orders.ORDER_REJECTED)) <= limits.MAX_RECORD_BYTES

    # GET /external-orders/{id}: the order with a long history (1000 lines, each with a 300-character reason)
    history = [orders.StatusChange(from_="received", to="received", source="platform", reason="r" * 300, at=AT)] * 1000
    detail = orders.ExternalOrderDetail(**dict(shown), status_history=history,
                                        platform_sync=orders.PlatformSync(status="accepted", outcome="failed", attempts=99,
                                                                          error="e" * 2_000, at=AT))
    reply = replies.Reply(status=200, body=orders.ExternalOrderDocument(data=detail).model_dump(mode="json", by_alias=True))
    assert record_bytes(longest(reply, replies.REPLY)) <= limits.MAX_RECORD_BYTES


def test_a_page_counted_in_characters_fits_a_record_in_bytes():
    assert orders.PAGE_BYTES * limits.MAX_CHARACTER_BYTES + limits.ORDER_HEADROOM <= limits.MAX_RECORD_BYTES
    assert orders.PAGE_BYTES > 655_360  # never smaller than the pages of the 1 MiB record limit before


def test_the_dead_letter_of_the_largest_record_fits_a_record():
    """A dead letter keeps the first 100,000 characters of the value: at worst 6 bytes each in JSON."""
    original = longest(replies.Reply(status=200), replies.REPLY)
    letter = replies.DeadLetter(topic="t" * 249, partition=2**31 - 1, offset=2**63 - 1, consumer="c" * 200,
                                error="\x01" * 2_000, attempts=100,
                                original_headers={name: value.decode() for name, value in original.headers()},
                                original_value="\x01" * 100_000)
    assert record_bytes(longest(letter, replies.DEAD_LETTER)) < MIB < limits.MAX_RECORD_BYTES


def test_kafka_max_record_bytes_defaults_to_the_limit_and_never_goes_below_it():
    assert KafkaSettings(kafka_bootstrap_servers="127.0.0.1:1").kafka_max_record_bytes == limits.MAX_RECORD_BYTES
    assert KafkaSettings(kafka_bootstrap_servers="127.0.0.1:1", kafka_max_record_bytes=8 * MIB).kafka_max_record_bytes == 8 * MIB
    with pytest.raises(ValidationError, match="kafka_max_record_bytes"):
        KafkaSettings(kafka_bootstrap_servers="127.0.0.1:1", kafka_max_record_bytes=MIB)


async def test_producers_and_consumers_are_built_with_the_one_limit():
    settings = KafkaSettings(kafka_bootstrap_servers="127.0.0.1:1", kafka_max_record_bytes=8 * MIB)
    producer = kafka.make_producer(settings, client_id="limits")
    consumer = kafka.make_consumer(settings, "t", group_id=None, client_id="limits")
    assert producer._max_request_size == 8 * MIB
    assert consumer._max_partition_fetch_bytes == 8 * MIB and consumer._fetch_max_bytes >= 8 * MIB
