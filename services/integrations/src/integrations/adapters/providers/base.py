"""The interface every inbound adapter implements, and what they share."""
from __future__ import annotations

import hmac
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any, Callable, Mapping

from pydantic import BaseModel, ConfigDict, ValidationError

from posint_common.contracts.inbound import NormalizedOrder
from posint_common.contracts.problem import FieldError, field_errors


class SignatureError(Exception):
    """The push is not authenticated; the reason is logged, never shown to the caller."""


class InvalidOrder(Exception):
    """A verified payload that cannot be turned into an order: a 400 saying what is wrong."""

    def __init__(self, detail: str, errors: list[FieldError] | None = None) -> None:
        super().__init__(detail)
        self.detail = detail
        self.errors = errors or []


@dataclass(frozen=True)
class Keys:
    """An integration's secrets, opened only for the check: the inbound secret and the credentials."""

    inbound_secret: str | None = None
    credentials: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Parsed:
    order: NormalizedOrder
    webhook_id: str | None  # the provider's delivery id, when it has one: a redelivery is recognised by it


@dataclass(frozen=True)
class Cancellation:
    """The platform cancelled one of its orders (a push that carries no order, only its id)."""

    external_id: str
    webhook_id: str | None
    reason: str | None = None
    cancelled_at: datetime | None = None


@dataclass(frozen=True)
class InboundAdapter:
    """``verify`` raises SignatureError unless the headers authenticate these exact bytes;
    ``parse`` raises InvalidOrder for a document that is not an order (or a cancellation of one)
    it understands."""

    verify: Callable[[bytes, Mapping[str, str], Keys, int], None]
    parse: Callable[[dict[str, Any], Mapping[str, str]], Parsed | Cancellation]


CANCELLED_STATES = frozenset({"cancelled", "canceled"})  # a platform's order state, compared lowercased
REASON_MAX = 500


def cancelled_state(value: Any) -> bool:
    """Whether a platform's order state (any spelling and case of "cancelled") says cancelled."""
    return isinstance(value, str) and value.strip().lower() in CANCELLED_STATES


def reason_text(value: Any) -> str | None:
    """A platform's cancellation reason, as free text cut to REASON_MAX (never refused for its form)."""
    if not isinstance(value, str) or not value.strip():
        return None
    return "".join(ch if ch.isprintable() else " " for ch in value.strip())[:REASON_MAX]


class Native(BaseModel):
    """Base of the models of a provider's own payload: fields we do not use are ignored (the
    provider adds them freely), the ones we use are checked."""

    model_config = ConfigDict(extra="ignore", frozen=True, hide_input_in_errors=True)


def same(expected: str, given: str | None) -> bool:
    """Constant-time comparison of two header values (as bytes: any text compares)."""
    return given is not None and hmac.compare_digest(expected.encode(), given.encode(errors="replace"))


def validated(model: type[BaseModel], document: Any, prefix: tuple[str, ...] = ()) -> Any:
    try:
        return model.model_validate(document)
    except ValidationError as error:
        raise InvalidOrder("The order payload is not valid.", field_errors(error, prefix)) from None


def order(fields: dict[str, Any]) -> NormalizedOrder:
    """The normalized order built by an adapter; an inconsistency is the payload's fault (400)."""
    return validated(NormalizedOrder, fields)


def minor_units(amount: int, exponent: int = 2) -> Decimal:
    """Cents (or the currency's minor unit) to an exact decimal amount: 1099 -> 10.99."""
    return Decimal(amount).scaleb(-exponent)
