"""Uber Eats API client.

Authentication (Uber's public docs): OAuth 2.0 client credentials, ``POST token_url`` with the
form ``client_id``, ``client_secret``, ``grant_type=client_credentials``, ``scope=eats.order
eats.store``, answering ``{"access_token", "expires_in", "token_type"}`` (30 days); refreshed a
minute before expiry and once after a 401.

Guessed (Uber's Order API is documented for partners only): the order list ``GET
/v1/delivery/store/{store_id}/orders?updated_since=<ISO>&page_token=<t>`` answering ``{"orders":
[<order as in GET /v2/eats/order/{id}> + "updated_at"], "next_page_token"}`` (``updated_since``
inclusive; the order parsed like the inbound adapter's ``order``); status ``POST
/v1/delivery/order/{id}/accept`` ``{"ready_for_pickup_time"}``, ``/deny`` ``{"deny_reason":
{"type", "info"}}``, ``/ready`` ``{}``, ``/cancel`` ``{"type", "info"}``. A cancelled order is
listed with ``current_state`` ``CANCELED`` (Uber's order states).
"""
from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any, Mapping
from urllib.parse import quote

import aiohttp

from integrations.adapters.providers import ubereats
from integrations.adapters.providers.api.delivery import DeliveryClient, items_and_cursor, iso
from integrations.adapters.providers.api.transport import OAuth, Transport
from integrations.adapters.providers.client import (
    ClientOptions, OrderStatusKind, StatusUpdate, TokenSet, TokenSink,
)

SCOPE = "eats.order eats.store"


class UberEatsClient(DeliveryClient):
    provider = "ubereats"
    native = ubereats.Order
    state_key = ubereats.STATE_KEY  # "current_state": "CANCELED"
    normalize = staticmethod(ubereats.normalized)

    def __init__(self, config: Mapping[str, Any], credentials: Mapping[str, str], session: aiohttp.ClientSession,
                 options: ClientOptions, tokens: TokenSet | None = None, on_tokens: TokenSink | None = None) -> None:
        super().__init__(session, options)
        self.store_id = config["store_id"]
        client_id, client_secret = credentials["client_id"], credentials["client_secret"]

        def grant(current: TokenSet | None) -> tuple[dict[str, str], dict[str, str]]:
            return {"client_id": client_id, "client_secret": client_secret,
                    "grant_type": "client_credentials", "scope": SCOPE}, {}

        tokens_http = Transport(self.provider, session, options, config["token_url"])
        auth = OAuth(tokens_http, config["token_url"], grant, tokens, on_tokens, owner=self)
        self.http = Transport(self.provider, session, options, config["api_base_url"], auth)

    async def page(self, since: datetime | None, cursor: str | None) -> tuple[list[Any], str | None]:
        params = {key: value for key, value in (("updated_since", since and iso(since)), ("page_token", cursor)) if value}
        document = await self.http.request(
            "GET", f"/v1/delivery/store/{quote(self.store_id, safe='')}/orders", params=params)
        return items_and_cursor(document, "orders", "next_page_token", self.provider)

    async def push_status(self, external_id: str, update: StatusUpdate) -> None:
        order = f"/v1/delivery/order/{quote(external_id, safe='')}"
        if update.status is OrderStatusKind.ACCEPTED:
            ready = datetime.now(timezone.utc) + timedelta(minutes=update.prep_time_minutes or 0)
            await self.http.request("POST", f"{order}/accept",
                                    json_body={"ready_for_pickup_time": iso(ready.replace(microsecond=0))})
        elif update.status in (OrderStatusKind.REJECTED, OrderStatusKind.EXPIRED):
            reason = update.reason or ("EXPIRED" if update.status is OrderStatusKind.EXPIRED else "OTHER")
            await self.http.request("POST", f"{order}/deny",
                                    json_body={"deny_reason": {"type": reason, "info": update.detail}})
        elif update.status is OrderStatusKind.READY:
            await self.http.request("POST", f"{order}/ready", json_body={})
        else:
            await self.http.request("POST", f"{order}/cancel",
                                    json_body={"type": update.reason or "OTHER", "info": update.detail})
