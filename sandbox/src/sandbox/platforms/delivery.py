"""The fake delivery platforms: DoorDash, Uber Eats, Grubhub and a ``custom`` platform. Each lists
its orders since a watermark, records the status updates it receives, checks its own
authentication, and pushes new orders to posint signed its own way. Paths and shapes follow what
the client modules (integrations.adapters.providers.api) document, guesses included."""
from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets
import time
import uuid
from datetime import datetime, timezone
from typing import Any
from urllib.parse import urlsplit

import jwt
from aiohttp import web
from standardwebhooks import Webhook

from sandbox.platforms import samples
from sandbox.platforms.base import Platform, problem
from sandbox.platforms.demo import DEMO_CREDENTIALS

MAC_PARAM = re.compile(r'(\w+)="([^"]*)"')


class DoorDash(Platform):
    """Checks the DD-JWT-V1 bearer JWT; pushes with ``Authorization: Bearer <inbound secret>``."""

    name = "doordash"
    order_prefix = "DD"

    def __init__(self, credentials: dict[str, str] | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.credentials = credentials or DEMO_CREDENTIALS["doordash"]
        secret = self.credentials["signing_secret"]
        self.key = base64.urlsafe_b64decode(secret + "=" * (-len(secret) % 4))

    def api_routes(self, app: web.Application) -> None:
        app.router.add_get("/marketplace/api/v1/stores/{store_id}/orders", self.list_orders)
        app.router.add_patch("/marketplace/api/v1/orders/{order_id}", self.record_status)
        app.router.add_patch("/marketplace/api/v1/orders/{order_id}/events/order_ready_for_pickup", self.record_status)
        app.router.add_patch("/marketplace/api/v1/orders/{order_id}/cancellation", self.record_status)

    async def list_orders(self, request: web.Request) -> web.Response:
        return web.json_response(self.list_page(request))

    async def authorized(self, request: web.Request) -> bool:
        scheme, _, token = request.headers.get("Authorization", "").partition(" ")
        if scheme != "Bearer":
            return False
        try:
            header = jwt.get_unverified_header(token)
            claims = jwt.decode(token, self.key, algorithms=["HS256"], audience="doordash",
                                options={"require": ["exp", "iat", "iss", "kid"]})
        except jwt.PyJWTError:
            return False
        return (header.get("dd-ver") == "DD-JWT-V1" and claims["iss"] == self.credentials["developer_id"]
                and claims["kid"] == self.credentials["key_id"])

    def sign_push(self, url: str, body: bytes, secret: str | None, order: dict[str, Any]) -> dict[str, str]:
        return {"Authorization": f"Bearer {secret}"} if secret else {}

    def push_body(self, order: dict[str, Any]) -> dict[str, Any]:
        return {"event": {"type": "OrderCreate"}, "order": order}

    def cancel_body(self, listed) -> dict[str, Any]:
        return {"event": {"type": "OrderCancel"}, "order": {**listed.order, **self.cancelled_fields(listed)}}


class UberEats(Platform):
    """OAuth client credentials; pushes ``orders.notification`` with ``X-Uber-Signature``."""

    name = "ubereats"
    order_prefix = "UE"
    cursor_key, cursor_param = "next_page_token", "page_token"
    state_key, cancelled_value = "current_state", "CANCELED"

    def __init__(self, credentials: dict[str, str] | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.credentials = credentials or DEMO_CREDENTIALS["ubereats"]

    def api_routes(self, app: web.Application) -> None:
        app.router.add_post("/oauth/v2/token", self.token)
        app.router.add_get("/v1/delivery/store/{store_id}/orders", self.list_orders)
        for action in ("accept", "deny", "ready", "cancel"):
            app.router.add_post(f"/v1/delivery/order/{{order_id}}/{action}", self.record_status)

    async def authorized(self, request: web.Request) -> bool:
        return request.path.endswith("/oauth/v2/token") or self.bearer_valid(request)

    async def token(self, request: web.Request) -> web.Response:
        form = await request.post()
        if (form.get("grant_type") != "client_credentials" or form.get("client_id") != self.credentials["client_id"]
                or form.get("client_secret") != self.credentials["client_secret"]):
            return web.json_response({"error": "invalid_client"}, status=401)
        return web.json_response({**self.issue_token(), "scope": form.get("scope", "")})

    async def list_orders(self, request: web.Request) -> web.Response:
        return web.json_response(self.list_page(request))

    def sign_push(self, url: str, body: bytes, secret: str | None, order: dict[str, Any]) -> dict[str, str]:
        key = self.credentials["client_secret"].encode()  # Uber signs with the app's secret, not posint's
        return {"X-Uber-Signature": hmac.new(key, body, hashlib.sha256).hexdigest()}

    def push_body(self, order: dict[str, Any]) -> dict[str, Any]:
        return {"event_id": str(uuid.uuid4()), "event_type": "orders.notification",
                "event_time": int(time.time()), "meta": {"resource_id": order["id"], "status": "pos",
                                                         "user_id": "demo-uber-store"},
                "resource_href": f"https://api.uber.com/v2/eats/order/{order['id']}", "order": order}

    def cancel_body(self, listed) -> dict[str, Any]:
        """Uber's ``orders.cancel`` notification: no order, only its id (and our guessed ``reason``)."""
        order_id = listed.order["id"]
        return {"event_id": str(uuid.uuid4()), "event_type": "orders.cancel", "event_time": int(time.time()),
                "meta": {"resource_id": order_id, "status": "cancelled", "user_id": "demo-uber-store"},
                "resource_href": f"https://api.uber.com/v2/eats/order/{order_id}",
                **({"reason": listed.cancel_reason} if listed.cancel_reason else {})}


def grubhub_mac(client_id: str, secret_key: str, nonce: str, method: str, path: str, body: bytes) -> str:
    bodyhash = base64.b64encode(hashlib.sha256(body).digest()).decode()
    mac = base64.b64encode(hmac.new(secret_key.encode(), f"{nonce}\n{method}\n{path}\n{bodyhash}\n".encode(),
                                    hashlib.sha256).digest()).decode()
    return f'MAC id="{client_id}",nonce="{nonce}",bodyhash="{bodyhash}",mac="{mac}"'


class Grubhub(Platform):
    """MAC-signed requests both ways (``Authorization: MAC id=..,nonce=..,bodyhash=..,mac=..``)."""

    name = "grubhub"
    order_prefix = "GH"
    cursor_key, cursor_param = "next_page", "page"

    def __init__(self, credentials: dict[str, str] | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.credentials = credentials or DEMO_CREDENTIALS["grubhub"]

    def api_routes(self, app: web.Application) -> None:
        app.router.add_get("/pos/v1/merchant/{merchant_id}/orders", self.list_orders)
        app.router.add_put("/pos/v1/merchant/{merchant_id}/orders/{order_id}/status", self.record_status)

    async def list_orders(self, request: web.Request) -> web.Response:
        return web.json_response(self.list_page(request))

    async def authorized(self, request: web.Request) -> bool:
        scheme, _, rest = request.headers.get("Authorization", "").partition(" ")
        params = dict(MAC_PARAM.findall(rest))
        if scheme != "MAC" or not {"id", "nonce", "mac"} <= params.keys():
            return False
        expected = grubhub_mac(self.credentials["client_id"], self.credentials["secret_key"], params["nonce"],
                               request.method, request.raw_path, await request.read())
        return hmac.compare_digest(expected, f"MAC {rest}")

    def sign_push(self, url: str, body: bytes, secret: str | None, order: dict[str, Any]) -> dict[str, str]:
        nonce = f"{int(time.time())}:{secrets.token_hex(8)}"
        return {"Authorization": grubhub_mac(self.credentials["client_id"], self.credentials["secret_key"], nonce,
                                             "POST", urlsplit(url).path, body)}


class Custom(Platform):
    """A system speaking posint's own shapes; pushes signed as Standard Webhooks."""

    name = "custom"
    order_prefix = "WEB"
    state_key, cancelled_value, reason_key = "status", "cancelled", "reason"

    def __init__(self, credentials: dict[str, str] | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.credentials = credentials if credentials is not None else DEMO_CREDENTIALS["custom"]

    def api_routes(self, app: web.Application) -> None:
        app.router.add_get("/orders", self.list_orders)
        app.router.add_post("/orders/{order_id}/status", self.record_status)

    async def authorized(self, request: web.Request) -> bool:
        key = self.credentials.get("api_key")
        return not key or hmac.compare_digest(request.headers.get("Authorization", ""), f"Bearer {key}")

    def list_element(self, listed) -> dict[str, Any]:
        return {"updated_at": samples.iso(listed.updated_at), "order": listed.order, **self.cancelled_fields(listed)}

    def cancel_body(self, listed) -> dict[str, Any]:
        """posint's documented cancellation: ``{"external_id", "status": "cancelled", "reason"?}``."""
        return {"external_id": listed.order["external_id"], **self.cancelled_fields(listed)}

    async def list_orders(self, request: web.Request) -> web.Response:
        return web.json_response(self.list_page(request))

    def push_body(self, order: dict[str, Any]) -> dict[str, Any]:
        return order

    def sign_push(self, url: str, body: bytes, secret: str | None, order: dict[str, Any]) -> dict[str, str]:
        if not secret:
            raise ValueError("a custom push needs the integration's inbound_secret (whsec_...)")
        msg_id = f"msg_{uuid.uuid4().hex}"
        now = datetime.now(timezone.utc)
        return {"webhook-id": msg_id, "webhook-timestamp": str(int(now.timestamp())),
                "webhook-signature": Webhook(secret).sign(msg_id, now, body.decode())}


__all__ = ["Custom", "DoorDash", "Grubhub", "UberEats", "problem"]
