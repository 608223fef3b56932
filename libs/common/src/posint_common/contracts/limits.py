"""Size limits that must line up along the inbound path, in one place.

A push of up to ``INBOUND_MAX_BYTES`` travels base64 in one command record; the order then travels
twice over (the platform's ``raw_data`` beside the normalized order) in the ``order-received``
event, in every ``order.*`` event, in the reply to ``GET /external-orders/{id}`` and in a page of
``GET /external-orders``. Every one of those records must fit ``MAX_RECORD_BYTES``: a record the
broker refuses would leave something answered 202 stuck in an outbox. The worst cases, worked out
(and checked by libs/common/tests/unit/test_record_limits.py):

- command: base64 of 1 MiB is 1,398,104 bytes; with five forwarded headers of up to 4096 characters
  (escaped), the ce_* headers and the record's framing, at most about 1.38 MiB;
- order (``order_bytes``): ``raw_data`` is at most the body (re-encoded compactly: never longer,
  except that a platform's float such as ``1e15`` is written out in full); the normalized order of a
  ``custom`` push is the body again plus the defaults it spells out (``"external_id":null``,
  ``"quantity":1`` ... at most 49 bytes for each of up to 10,000 modifiers): about 2.6 MB for a 1 MiB
  push, under ``ORDER_MAX_BYTES``. A native platform's payload could in theory grow larger, so an
  order over ``ORDER_MAX_BYTES`` must be refused before it is recorded, never answered 202;
- the rest of a record (``ORDER_HEADROOM``): envelope headers, an event's own fields, the reply's
  wrapping and an order's status history (a line is about 100 bytes, a few hundred with a reason).
"""
from __future__ import annotations

from typing import Any

import pydantic_core

INBOUND_MAX_BYTES = 1_048_576
"""The largest inbound push (``POST /integrations/{id}/inbound``) body; one byte more is a 413."""

MAX_RECORD_BYTES = 4_194_304
"""The largest record posint produces and consumes: the default, and the least allowed value, of
``KAFKA_MAX_RECORD_BYTES`` (producer ``max_request_size``, consumer fetch sizes, topics'
``max.message.bytes``)."""

ORDER_HEADROOM = 524_288
ORDER_MAX_BYTES = MAX_RECORD_BYTES - ORDER_HEADROOM
"""The most one order may take (``order_bytes``) so that every record carrying it fits."""

MAX_CHARACTER_BYTES = 4
"""UTF-8 needs at most 4 bytes for a character: a budget counted in characters is this much smaller."""


def order_bytes(normalized: dict[str, Any], raw_data: dict[str, Any]) -> int:
    """The bytes of JSON an order takes in a record: its raw data and its normalized form (nulls
    included, as the API shows it)."""
    return len(pydantic_core.to_json(raw_data)) + len(pydantic_core.to_json(normalized))
