"""CloudEvents 1.0 envelope in Kafka binary mode: attributes in ce_* headers, JSON data as the value.

The subject carries the aggregate id and becomes the Kafka key, so one aggregate's messages stay
ordered. ``ce_source`` + ``ce_id`` identify a message for deduplication, so a record must carry its
``ce_id``: a made-up one would make a redelivery look like a new message.
"""
from __future__ import annotations

import re
import uuid
from datetime import datetime, timezone
from typing import Any, Iterable

import pydantic_core
from pydantic import BaseModel, ConfigDict, Field, ValidationError

SPECVERSION = "1.0"
JSON_CONTENT_TYPE = "application/json"
HEADER_PREFIX = "ce_"
# The Kafka protocol binding maps datacontenttype to the plain content-type header.
CONTENT_TYPE_HEADER = "content-type"
EXTENSIONS = ("correlationid", "causationid", "tenantid", "replyto")
# Bounds an attribute so the inbox key (source/id) fits a btree row, and metric labels stay sane.
MAX_ATTRIBUTE_CHARS = 256
# CloudEvents strings exclude control characters; Postgres text and jsonb refuse NUL.
_CONTROL_CHARACTER = re.compile("[\x00-\x1f\x7f-\x9f]")


class InvalidEnvelope(ValueError):
    """A record that is not a CloudEvent we can read; it goes to the dead-letter topic."""


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
    data: dict[str, Any] = Field(default_factory=dict)

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
            attrs[attr] = _attribute(name, raw)
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
