"""What the delivery clients share: reading a platform's order list page by page since a
watermark, parsing each element with the provider's inbound model, and the watermark itself."""
from __future__ import annotations

from datetime import datetime
from typing import Any, Callable

from pydantic import AwareDatetime, TypeAdapter, ValidationError

from integrations.adapters.providers.base import InvalidOrder, Native, cancelled_state, reason_text, validated
from integrations.adapters.providers.client import (
    FetchedOrder, FetchResult, PermanentError, ProviderClient, UnparsableOrder,
)
from posint_common.contracts.inbound import NormalizedOrder

_TIME = TypeAdapter(AwareDatetime)


def iso(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


def changed_at(document: dict[str, Any], *keys: str) -> datetime | None:
    """The first of ``keys`` that holds an ISO 8601 time with an offset, else None."""
    for key in keys:
        try:
            return _TIME.validate_python(document.get(key))
        except ValidationError:
            continue
    return None


class DeliveryClient(ProviderClient):
    """``fetch_orders`` for a platform whose list answers ``{<items_key>: [...], <cursor_key>: ...}``;
    a subclass says where the list is (``page``) and how one element becomes an order (``native``,
    ``normalize``, ``time_keys``), and where an element says the platform cancelled the order
    (``state_key`` holding "cancelled" or "canceled", any case; the reason under ``reason_key``)."""

    native: type[Native]
    normalize: Callable[[Any], NormalizedOrder]
    time_keys: tuple[str, ...] = ("updated_at",)
    state_key: str = "status"
    reason_key: str = "cancel_reason"

    async def page(self, since: datetime | None, cursor: str | None) -> tuple[list[Any], str | None]:
        raise NotImplementedError

    def order_of(self, element: dict[str, Any]) -> dict[str, Any]:
        """The order document inside one list element (the element itself by default)."""
        return element

    async def fetch_orders(self, since: datetime | None) -> FetchResult:
        latest: dict[str, tuple[datetime, FetchedOrder]] = {}
        failed: list[UnparsableOrder] = []
        watermark, cursor = since, None
        for _ in range(self.options.page_limit):
            elements, cursor = await self.page(since, cursor)
            for element in elements:
                parsed = self._parse(element)
                if isinstance(parsed, UnparsableOrder):
                    failed.append(parsed)
                    continue
                when, fetched = parsed
                known = latest.get(fetched.normalized.external_id)
                if known is None or when >= known[0]:  # out of order or repeated: the latest change wins
                    latest[fetched.normalized.external_id] = (when, fetched)
                watermark = when if watermark is None or when > watermark else watermark
            if not cursor:
                break
        ordered = sorted(latest.values(), key=lambda pair: pair[0])
        return FetchResult([fetched for _, fetched in ordered], watermark, failed)

    def _parse(self, element: Any) -> tuple[datetime, FetchedOrder] | UnparsableOrder:
        if not isinstance(element, dict):
            return UnparsableOrder(element, "list element is not an object")
        document = self.order_of(element)
        external_id = (document.get("id") or document.get("external_id")) if isinstance(document, dict) else None
        external_id = external_id if isinstance(external_id, str) else None
        try:
            normalized = self.normalize(validated(self.native, document))
        except InvalidOrder as error:
            detail = "; ".join(f"{item.field}: {item.message}" for item in error.errors) or error.detail
            return UnparsableOrder(element, detail, external_id)
        when = changed_at(element, *self.time_keys) or normalized.placed_at
        cancelled = cancelled_state(element.get(self.state_key))
        return when, FetchedOrder(normalized, element, cancelled,
                                  reason_text(element.get(self.reason_key)) if cancelled else None)


def items_and_cursor(document: dict[str, Any] | None, items_key: str, cursor_key: str,
                     provider: str) -> tuple[list[Any], str | None]:
    """The page's elements and the next cursor (None: last page); a page of another shape is a
    PermanentError (a malformed response)."""
    if document is None or not isinstance(document.get(items_key), list):
        raise PermanentError(f"{provider} order list has no '{items_key}' array")
    cursor = document.get(cursor_key)
    if cursor is not None and not isinstance(cursor, (str, int)):
        raise PermanentError(f"{provider} order list has a malformed '{cursor_key}'")
    return document[items_key], (str(cursor) if cursor not in (None, "") else None)
