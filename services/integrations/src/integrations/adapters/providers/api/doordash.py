"""DoorDash Marketplace API client.

Authentication (DoorDash's public docs, "JWT authentication"): every request carries
``Authorization: Bearer <JWT>``, HS256 over ``{"aud": "doordash", "iss": developer_id, "kid":
key_id, "iat", "exp": iat + 300}`` with the header ``dd-ver: DD-JWT-V1``, keyed with the
base64url-decoded ``signing_secret`` (made fresh for each request, so there is nothing to refresh:
a 401 is ``AuthExpired``).

Status (documented): order confirmation ``PATCH /marketplace/api/v1/orders/{id}`` with
``{"merchant_supplied_id", "order_status": "success"|"fail", "failure_reason", "prep_time"}``
(``prep_time`` as the ISO time the order will be ready); ``PATCH
/marketplace/api/v1/orders/{id}/events/order_ready_for_pickup``; cancellation ``PATCH
/marketplace/api/v1/orders/{id}/cancellation`` ``{"cancel_reason", "cancel_details"}``.
Guessed: the order list. DoorDash pushes orders and documents no list for Marketplace partners;
we read ``GET /marketplace/api/v1/stores/{store_id}/orders?updated_since=<ISO>&cursor=<c>``
answering ``{"orders": [<the webhook's order object> + "updated_at"], "next_cursor"}``
(``updated_since`` inclusive), the order parsed like a webhook (``providers/doordash.py``); a
cancelled order is listed with ``"status": "CANCELLED"`` (and ``cancel_reason``).
"""
from __future__ import annotations

import base64
import time
from datetime import datetime, timedelta, timezone
from typing import Any, Mapping
from urllib.parse import quote

import aiohttp
import jwt

from integrations.adapters.providers import doordash
from integrations.adapters.providers.api.delivery import DeliveryClient, items_and_cursor, iso
from integrations.adapters.providers.api.transport import Auth, Transport
from integrations.adapters.providers.client import (
    ClientOptions, OrderStatusKind, PermanentError, StatusUpdate, TokenSet, TokenSink,
)

JWT_LIFETIME_S = 300


class JwtAuth(Auth):
    def __init__(self, developer_id: str, key_id: str, signing_secret: str) -> None:
        self.developer_id, self.key_id = developer_id, key_id
        try:
            self.key = base64.urlsafe_b64decode(signing_secret + "=" * (-len(signing_secret) % 4))
        except ValueError:
            raise PermanentError("doordash signing_secret is not base64url") from None

    def token(self, now: float | None = None) -> str:
        issued = int(time.time() if now is None else now)
        claims = {"aud": "doordash", "iss": self.developer_id, "kid": self.key_id,
                  "iat": issued, "exp": issued + JWT_LIFETIME_S}
        return jwt.encode(claims, self.key, algorithm="HS256", headers={"dd-ver": "DD-JWT-V1"})

    async def headers(self, method: str, path: str, body: bytes) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token()}"}


class DoorDashClient(DeliveryClient):
    provider = "doordash"
    native = doordash.Order
    normalize = staticmethod(doordash.normalized)

    def __init__(self, config: Mapping[str, Any], credentials: Mapping[str, str], session: aiohttp.ClientSession,
                 options: ClientOptions, tokens: TokenSet | None = None, on_tokens: TokenSink | None = None) -> None:
        super().__init__(session, options)
        self.store_id = config["store_id"]
        auth = JwtAuth(credentials["developer_id"], credentials["key_id"], credentials["signing_secret"])
        self.http = Transport(self.provider, session, options, config["api_base_url"], auth)

    async def page(self, since: datetime | None, cursor: str | None) -> tuple[list[Any], str | None]:
        params = {key: value for key, value in (("updated_since", since and iso(since)), ("cursor", cursor)) if value}
        document = await self.http.request(
            "GET", f"/marketplace/api/v1/stores/{quote(self.store_id, safe='')}/orders", params=params)
        return items_and_cursor(document, "orders", "next_cursor", self.provider)

    async def push_status(self, external_id: str, update: StatusUpdate) -> None:
        order = f"/marketplace/api/v1/orders/{quote(external_id, safe='')}"
        if update.status is OrderStatusKind.ACCEPTED:
            ready = datetime.now(timezone.utc) + timedelta(minutes=update.prep_time_minutes or 0)
            body = {"merchant_supplied_id": external_id, "order_status": "success",
                    "prep_time": iso(ready.replace(microsecond=0))}
            await self.http.request("PATCH", order, json_body=body)
        elif update.status in (OrderStatusKind.REJECTED, OrderStatusKind.EXPIRED):
            reason = update.reason or ("expired" if update.status is OrderStatusKind.EXPIRED else "OTHER")
            body = {"merchant_supplied_id": external_id, "order_status": "fail",
                    "failure_reason": f"{reason}: {update.detail}" if update.detail else reason}
            await self.http.request("PATCH", order, json_body=body)
        elif update.status is OrderStatusKind.READY:
            await self.http.request("PATCH", f"{order}/events/order_ready_for_pickup",
                                    json_body={"merchant_supplied_id": external_id})
        else:
            await self.http.request("PATCH", f"{order}/cancellation",
                                    json_body={"cancel_reason": update.reason or "OTHER",
                                               "cancel_details": update.detail})
