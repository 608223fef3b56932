"""Client of a ``custom`` platform: any system that speaks our own documented shapes (nothing
guessed: this is posint's contract for such systems, see the README).

- Order list (optional, for sync): ``GET {api_base_url}/orders?updated_since=<ISO>&cursor=<c>``
  answering ``{"orders": [{"updated_at": <ISO>, "order": <normalized order>}], "next_cursor"}``;
  an element with ``"status": "cancelled"`` (and an optional ``"reason"``) is an order the platform
  cancelled.
- Status: ``POST {api_base_url}/orders/{external_id}/status`` with ``{"status": "accepted" |
  "rejected" | "ready" | "cancelled" | "expired", "prep_time_minutes", "reason", "detail"}``;
  ``Authorization: Bearer <credentials.api_key>`` when the integration has one.

Without ``api_base_url`` the platform is push only: a sync fetches nothing, a status update is
``Unsupported``.
"""
from __future__ import annotations

from datetime import datetime
from typing import Any, Mapping
from urllib.parse import quote

import aiohttp

from integrations.adapters.providers.api.delivery import DeliveryClient, items_and_cursor, iso
from integrations.adapters.providers.api.transport import Auth, Transport
from integrations.adapters.providers.client import (
    ClientOptions, FetchResult, StatusUpdate, TokenSet, TokenSink, Unsupported,
)
from posint_common.contracts.inbound import NormalizedOrder


class ApiKey(Auth):
    def __init__(self, api_key: str | None) -> None:
        self.api_key = api_key

    async def headers(self, method: str, path: str, body: bytes) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.api_key}"} if self.api_key else {}


class CustomClient(DeliveryClient):
    provider = "custom"
    native = NormalizedOrder
    normalize = staticmethod(lambda order: order)
    state_key, reason_key = "status", "reason"  # beside "order" in a list element

    def __init__(self, config: Mapping[str, Any], credentials: Mapping[str, str], session: aiohttp.ClientSession,
                 options: ClientOptions, tokens: TokenSet | None = None, on_tokens: TokenSink | None = None) -> None:
        super().__init__(session, options)
        base_url = config.get("api_base_url")
        self.http = Transport(self.provider, session, options, base_url, ApiKey(credentials.get("api_key"))) \
            if base_url else None

    def order_of(self, element: dict[str, Any]) -> dict[str, Any]:
        return element.get("order")

    async def fetch_orders(self, since: datetime | None) -> FetchResult:
        if self.http is None:
            return FetchResult([], since)
        return await super().fetch_orders(since)

    async def page(self, since: datetime | None, cursor: str | None) -> tuple[list[Any], str | None]:
        params = {key: value for key, value in (("updated_since", since and iso(since)), ("cursor", cursor)) if value}
        document = await self.http.request("GET", "/orders", params=params)
        return items_and_cursor(document, "orders", "next_cursor", self.provider)

    async def push_status(self, external_id: str, update: StatusUpdate) -> None:
        if self.http is None:
            raise Unsupported("this custom integration has no api_base_url: push only")
        await self.http.request("POST", f"/orders/{quote(external_id, safe='')}/status", json_body={
            "status": update.status.value, "prep_time_minutes": update.prep_time_minutes,
            "reason": update.reason, "detail": update.detail})
