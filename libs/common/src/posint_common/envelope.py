"""CloudEvents 1.0 envelope in Kafka binary mode: attributes in ce_* headers, JSON data as the value.

The subject carries the aggregate id and becomes the Kafka key, so one aggregate's messages stay
ordered. ``ce_source`` + ``ce_id`` identify a message for deduplication, so a record must carry its
``ce_id``: a made-up one would make a redelivery look like a new message.

A message that carries secrets (credentials, an inbound secret, a webhook signing secret) is
*sealed* where it is made: its data becomes ``{"sealed": "<base64 nonce+ciphertext+tag>"}``,
AES-256-GCM under the first key of ``TRANSPORT_KEYS``, with associated data binding it to its
``ce_id``, ``ce_type``, ``ce_source`` and ``ce_tenantid``; the extension ``ce_posintsealed`` names
the key id. Outbox rows, topics and dead letters only ever hold that form; the reader opens it in
one place (the consumer loop, the requester).
"""
from __future__ import annotations

import base64
import binascii
import re
import uuid
from datetime import datetime, timezone
from typing import Any, Iterable

import pydantic_core
from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, SecretStr, ValidationError

from posint_common.vault import KeyRing, Sealed, Undecryptable, associated_data

SPECVERSION = "1.0"
JSON_CONTENT_TYPE = "application/json"
HEADER_PREFIX = "ce_"
# The Kafka protocol binding maps datacontenttype to the plain content-type header.
CONTENT_TYPE_HEADER = "content-type"
EXTENSIONS = ("correlationid", "causationid", "tenantid", "replyto", "posintsealed")
SEALED_FIELD = "sealed"
# Bounds an attribute so the inbox key (source/id) fits a btree row, and metric labels stay sane.
MAX_ATTRIBUTE_CHARS = 256
# CloudEvents strings exclude control characters; Postgres text and jsonb refuse NUL.
_CONTROL_CHARACTER = re.compile("[\x00-\x1f\x7f-\x9f]")


class InvalidEnvelope(ValueError):
    """A record that is not a CloudEvent we can read; it goes to the dead-letter topic."""


class TransportKeyRing(KeyRing):
    """Seals the messages that carry secrets across the broker (see the module docstring)."""

    variable = "TRANSPORT_KEYS"

    @classmethod
    def from_setting(cls, value: SecretStr | None) -> "TransportKeyRing | None":
        """The ring of a (validated) ``TRANSPORT_KEYS`` setting; None when it is not set."""
        return None if value is None else cls.parse(value.get_secret_value())


def new_id() -> str:
    return str(uuid.uuid4())


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


class Envelope(BaseModel):
    model_config = ConfigDict(frozen=True)

    id: str = Field(default_factory=new_id, min_length=1)
    source: str = Field(min_length=1)
    type: str = Field(min_length=1)
    specversion: str = SPECVERSION
    time: datetime = Field(default_factory=utcnow)
    subject: str | None = None
    datacontenttype: str = JSON_CONTENT_TYPE
    correlationid: str | None = None
    causationid: str | None = None
    tenantid: str | None = None
    replyto: str | None = None
    posintsealed: str | None = None  # the key id of a sealed message's data
    data: dict[str, Any] = Field(default_factory=dict)
    _opened: bool = PrivateAttr(default=False)  # read sealed and opened here: a reply to it is sealed too

    @classmethod
    def wrap(cls, message: BaseModel, *, source: str, type: str, cause: "Envelope | None" = None, **attrs) -> "Envelope":
        """A new envelope for ``message``; a cause passes on its correlation id and tenant."""
        if cause is not None:
            attrs.setdefault("correlationid", cause.correlationid or cause.id)
            attrs.setdefault("causationid", cause.id)
            attrs.setdefault("tenantid", cause.tenantid)
        return cls(source=source, type=type, data=message.model_dump(mode="json", exclude_none=True), **attrs)

    @property
    def key(self) -> bytes | None:
        return self.subject.encode() if self.subject else None

    def headers(self) -> list[tuple[str, bytes]]:
        attrs = {
            "id": self.id,
            "source": self.source,
            "type": self.type,
            "specversion": self.specversion,
            "time": self.time.astimezone(timezone.utc).isoformat().replace("+00:00", "Z"),
            "subject": self.subject,
        }
        attrs.update({name: getattr(self, name) for name in EXTENSIONS})
        headers = [(HEADER_PREFIX + name, value.encode()) for name, value in attrs.items() if value is not None]
        headers.append((CONTENT_TYPE_HEADER, self.datacontenttype.encode()))
        return headers

    def value(self) -> bytes:
        return pydantic_core.to_json(self.data)

    @classmethod
    def from_record(cls, headers: Iterable[tuple[str, bytes | None]], value: bytes | None) -> "Envelope":
        """Read a Kafka record, or raise InvalidEnvelope saying why.

        Only our headers (``ce_*`` and ``content-type``) are judged: each at most once (a repeated
        one is ambiguous, so the record is invalid), with a non-empty UTF-8 value free of control
        characters. Other headers (tracing, a broker's own) are ignored whatever they hold. A null
        or empty value is an event without data.
        """
        attrs: dict[str, Any] = {}
        for name, raw in headers or ():
            if name == CONTENT_TYPE_HEADER:
                attr = "datacontenttype"
            elif name.startswith(HEADER_PREFIX):
                attr = name[len(HEADER_PREFIX) :]
            else:
                continue
            if attr in attrs:
                raise InvalidEnvelope(f"duplicate header {name}")
            try:  # the common case in one step; _attribute says what is wrong with any other
                text = raw.decode()
            except (AttributeError, UnicodeDecodeError):
                text = None
            attrs[attr] = text if text and len(text) <= MAX_ATTRIBUTE_CHARS else _attribute(name, raw)
        if _CONTROL_CHARACTER.search(" ".join(attrs.values())):  # one scan of all values; a space is no control
            for attr, text in attrs.items():
                _attribute(CONTENT_TYPE_HEADER if attr == "datacontenttype" else HEADER_PREFIX + attr, text.encode())
        if "id" not in attrs:
            raise InvalidEnvelope("missing ce_id")
        if attrs.get("specversion") != SPECVERSION:
            raise InvalidEnvelope(f"unsupported specversion {attrs.get('specversion')!r}")
        try:
            data = pydantic_core.from_json(value) if value else {}
        except ValueError as error:
            raise InvalidEnvelope(f"value is not JSON: {error}") from error
        if not isinstance(data, dict):
            raise InvalidEnvelope("value is not a JSON object")
        try:
            return cls.model_validate({**attrs, "data": data})
        except ValidationError as error:
            raise InvalidEnvelope(str(error)) from error

    def parse(self, model: type[BaseModel]) -> BaseModel:
        return model.model_validate(self.data)

    @property
    def was_sealed(self) -> bool:
        return self._opened

    def _aad(self) -> bytes:
        return associated_data("posint-envelope", self.id, self.type, self.source, self.tenantid or "")

    def sealed(self, ring: KeyRing) -> "Envelope":
        """This envelope with its data sealed under the ring's first key."""
        box = ring.seal(pydantic_core.to_json(self.data), self._aad())
        return self.model_copy(update={"posintsealed": box.key_id,
                                       "data": {SEALED_FIELD: base64.b64encode(box.blob).decode()}})

    def opened(self, ring: KeyRing | None) -> "Envelope":
        """The sealed envelope with its data back, or Undecryptable (no ring, unknown key, tampered, moved)."""
        if ring is None:
            raise Undecryptable(f"the message is sealed and {TransportKeyRing.variable} is not set")
        blob = self.data.get(SEALED_FIELD)
        if len(self.data) != 1 or not isinstance(blob, str):
            raise Undecryptable("a sealed message's data is not {\"sealed\": <base64>}")
        try:
            raw = base64.b64decode(blob, validate=True)
        except (binascii.Error, ValueError):
            raise Undecryptable("the sealed value is not base64") from None
        data = pydantic_core.from_json(ring.open(Sealed(self.posintsealed, raw), self._aad()))
        if not isinstance(data, dict):
            raise Undecryptable("the opened value is not a JSON object")
        opened = self.model_copy(update={"posintsealed": None, "data": data})
        opened._opened = True
        return opened



def _attribute(name: str, raw: bytes | None) -> str:
    if raw is None:
        raise InvalidEnvelope(f"header {name} has no value")
    try:
        text = bytes(raw).decode()
    except (UnicodeDecodeError, TypeError) as error:
        raise InvalidEnvelope(f"header {name} is not UTF-8") from error
    if not text:
        raise InvalidEnvelope(f"header {name} is empty")
    if len(text) > MAX_ATTRIBUTE_CHARS:
        raise InvalidEnvelope(f"header {name} is longer than {MAX_ATTRIBUTE_CHARS} characters")
    if _CONTROL_CHARACTER.search(text):
        raise InvalidEnvelope(f"header {name} has a control character")
    return text
