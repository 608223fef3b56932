"""Grubhub API client.

Authentication (Grubhub's public docs describe the scheme, the exact string is guessed): every
request carries ``Authorization: MAC id="<client_id>",nonce="<unix seconds>:<random>",
bodyhash="<base64 SHA-256 of the body>",mac="<base64 HMAC-SHA256>"`` keyed with ``secret_key``
over ``"<nonce>\\n<METHOD>\\n<path with query>\\n<bodyhash>\\n"`` (as the inbound adapter checks
it, with the request's own method and path). No token: a 401 is ``AuthExpired``.

Guessed: the order list ``GET /pos/v1/merchant/{merchant_id}/orders?updated_since=<ISO>&page=<n>``
answering ``{"orders": [<the webhook's order object> + "updated_at"], "next_page"}``
(``updated_since`` inclusive), parsed like a webhook; status ``PUT
/pos/v1/merchant/{merchant_id}/orders/{id}/status`` with ``{"status": "CONFIRMED" |
"REJECTED" | "READY_FOR_PICKUP" | "CANCELLED", "wait_time_in_minutes", "reason", "details"}``.
A cancelled order is listed with ``"status": "CANCELLED"`` (and ``cancel_reason``).
"""
from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import time
from datetime import datetime
from typing import Any, Mapping
from urllib.parse import quote

import aiohttp

from integrations.adapters.providers import grubhub
from integrations.adapters.providers.api.delivery import DeliveryClient, items_and_cursor, iso
from integrations.adapters.providers.api.transport import Auth, Transport
from integrations.adapters.providers.client import (
    ClientOptions, OrderStatusKind, StatusUpdate, TokenSet, TokenSink,
)

STATUS = {OrderStatusKind.ACCEPTED: "CONFIRMED", OrderStatusKind.REJECTED: "REJECTED",
          OrderStatusKind.EXPIRED: "REJECTED", OrderStatusKind.READY: "READY_FOR_PICKUP",
          OrderStatusKind.CANCELLED: "CANCELLED"}


def mac_header(client_id: str, secret_key: str, nonce: str, method: str, path: str, body: bytes) -> str:
    """The MAC header of one request (the sandbox checks it the same way)."""
    bodyhash = base64.b64encode(hashlib.sha256(body).digest()).decode()
    normalized = f"{nonce}\n{method}\n{path}\n{bodyhash}\n"
    mac = base64.b64encode(hmac.new(secret_key.encode(), normalized.encode(), hashlib.sha256).digest()).decode()
    return f'MAC id="{client_id}",nonce="{nonce}",bodyhash="{bodyhash}",mac="{mac}"'


class MacAuth(Auth):
    def __init__(self, client_id: str, secret_key: str) -> None:
        self.client_id, self.secret_key = client_id, secret_key

    async def headers(self, method: str, path: str, body: bytes) -> dict[str, str]:
        nonce = f"{int(time.time())}:{secrets.token_hex(8)}"
        return {"Authorization": mac_header(self.client_id, self.secret_key, nonce, method, path, body)}


class GrubhubClient(DeliveryClient):
    provider = "grubhub"
    native = grubhub.Order
    normalize = staticmethod(grubhub.normalized)

    def __init__(self, config: Mapping[str, Any], credentials: Mapping[str, str], session: aiohttp.ClientSession,
                 options: ClientOptions, tokens: TokenSet | None = None, on_tokens: TokenSink | None = None) -> None:
        super().__init__(session, options)
        self.merchant = f"/pos/v1/merchant/{quote(config['merchant_id'], safe='')}"
        auth = MacAuth(credentials["client_id"], credentials["secret_key"])
        self.http = Transport(self.provider, session, options, config["api_base_url"], auth)

    async def page(self, since: datetime | None, cursor: str | None) -> tuple[list[Any], str | None]:
        params = {key: value for key, value in (("updated_since", since and iso(since)), ("page", cursor)) if value}
        document = await self.http.request("GET", f"{self.merchant}/orders", params=params)
        return items_and_cursor(document, "orders", "next_page", self.provider)

    async def push_status(self, external_id: str, update: StatusUpdate) -> None:
        body: dict[str, Any] = {"status": STATUS[update.status]}
        if update.status is OrderStatusKind.ACCEPTED:
            body["wait_time_in_minutes"] = update.prep_time_minutes
        elif update.reason or update.detail:
            body.update(reason=update.reason, details=update.detail)
        await self.http.request("PUT", f"{self.merchant}/orders/{quote(external_id, safe='')}/status", json_body=body)
