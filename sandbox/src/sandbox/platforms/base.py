"""What every fake platform shares: its order list (since a watermark, paged, optionally repeated
or out of order), the status updates it received, the ledger documents it booked, the faults to
inject, OAuth tokens, the control API, and pushing an order to an inbound URL."""
from __future__ import annotations

import asyncio
import ipaddress
import json
import secrets
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any, Awaitable, Callable
from urllib.parse import urlsplit

import aiohttp
from aiohttp import web

from sandbox.platforms import samples
from sandbox.platforms.faults import Fault, FaultPlan, answer

CONTROL = "/_control"
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@dataclass
class Listed:
    order: dict[str, Any]
    updated_at: datetime
    cancelled: bool = False  # cancelled at the platform (listed so: ``cancelled_fields``)
    cancel_reason: str | None = None


@dataclass
class Recorded:
    """One write the platform received (a status update, a ledger write)."""

    method: str
    path: str
    body: Any
    headers: dict[str, str]
    at: datetime = field(default_factory=lambda: datetime.now(timezone.utc))

    def to_json(self) -> dict[str, Any]:
        return {"method": self.method, "path": self.path, "body": self.body, "at": samples.iso(self.at)}


def loopback_only(url: str) -> None:
    """The sandbox pushes to this machine only (127.0.0.0/8, ::1, localhost)."""
    host = urlsplit(url).hostname or ""
    if host == "localhost":
        return
    try:
        if ipaddress.ip_address(host).is_loopback:
            return
    except ValueError:
        pass
    raise ValueError(f"the sandbox pushes to loopback addresses only, not {host!r}")


def problem(status: int, detail: str) -> web.Response:
    return web.json_response({"type": "about:blank", "status": status, "detail": detail}, status=status,
                             content_type="application/problem+json")


class Platform:
    """Base of the fakes. A subclass sets ``name``, adds its routes in ``api_routes`` and may
    override ``authorized``, ``native`` and ``sign_push``."""

    name = ""
    order_prefix = "ORD"  # of the sample orders' ids
    items_key, cursor_key, cursor_param = "orders", "next_cursor", "cursor"
    state_key, cancelled_value, reason_key = "status", "CANCELLED", "cancel_reason"  # a cancelled order, listed

    def __init__(self, *, page_size: int = 50, token_ttl_s: int = 3600) -> None:
        self.faults = FaultPlan()
        self.orders: list[Listed] = []
        self.status_updates: list[Recorded] = []
        self.ledger: list[Recorded] = []
        self.requests: list[tuple[str, str]] = []  # (method, path) of every API request, faults included
        self.page_size = page_size
        self.duplicate = False  # list every order twice
        self.out_of_order = False  # list newest first (and pages in that order)
        self.token_ttl_s = token_ttl_s
        self.access_tokens: dict[str, float] = {}  # token -> expiry (monotonic)
        self.token_requests = 0
        self.pushes: list[dict[str, Any]] = []

    # --- state ----------------------------------------------------------------------------------

    def add_order(self, sample: samples.Sample | None = None, updated_at: datetime | None = None) -> dict[str, Any]:
        """Put an order on the platform's list (a new one, or a change to a listed one)."""
        sample = sample or samples.sample_order(self.order_prefix)
        document = self.native(sample)
        self.orders = [listed for listed in self.orders if self.order_id(listed.order) != sample.id]
        self.orders.append(Listed(document, updated_at or datetime.now(timezone.utc)))
        return document

    def native(self, sample: samples.Sample) -> dict[str, Any]:
        return samples.NATIVE[self.name](sample)

    @staticmethod
    def order_id(document: dict[str, Any]) -> str:
        return document.get("id") or document.get("external_id")

    def list_element(self, listed: Listed) -> dict[str, Any]:
        return {**listed.order, "updated_at": samples.iso(listed.updated_at), **self.cancelled_fields(listed)}

    def cancelled_fields(self, listed: Listed) -> dict[str, Any]:
        """What the list shows of a cancellation (nothing for an order that stands)."""
        if not listed.cancelled:
            return {}
        return {self.state_key: self.cancelled_value, **({self.reason_key: listed.cancel_reason} if listed.cancel_reason else {})}

    def cancel_order(self, order_id: str, reason: str | None = None) -> Listed:
        """The platform cancels a listed order: it is listed again (changed now) as cancelled.
        KeyError for an order it does not list."""
        for listed in self.orders:
            if self.order_id(listed.order) == order_id:
                listed.cancelled, listed.cancel_reason = True, reason
                listed.updated_at = datetime.now(timezone.utc)
                return listed
        raise KeyError(order_id)

    def reset(self) -> None:
        self.faults.clear()
        self.orders.clear()
        self.status_updates.clear()
        self.ledger.clear()
        self.requests.clear()
        self.pushes.clear()
        self.access_tokens.clear()
        self.duplicate = self.out_of_order = False

    def expire_tokens(self) -> None:
        """Every access token issued so far is refused from now on (401): the client must refresh."""
        self.access_tokens.clear()

    # --- OAuth -----------------------------------------------------------------------------------

    def issue_token(self) -> dict[str, Any]:
        token = f"{self.name}-at-{secrets.token_urlsafe(16)}"
        self.access_tokens[token] = time.monotonic() + self.token_ttl_s
        self.token_requests += 1
        return {"access_token": token, "token_type": "bearer", "expires_in": self.token_ttl_s}

    def bearer_valid(self, request: web.Request) -> bool:
        scheme, _, token = request.headers.get("Authorization", "").partition(" ")
        expiry = self.access_tokens.get(token) if scheme.lower() == "bearer" else None
        return expiry is not None and expiry > time.monotonic()

    # --- HTTP -------------------------------------------------------------------------------------

    def app(self) -> web.Application:
        app = web.Application(middlewares=[self._middleware], client_max_size=1024 * 1024)
        app.router.add_get(f"{CONTROL}/state", self._state)
        app.router.add_post(f"{CONTROL}/faults", self._add_fault)
        app.router.add_post(f"{CONTROL}/orders", self._add_order)
        app.router.add_post(f"{CONTROL}/orders/{{order_id}}/cancel", self._cancel_order)
        app.router.add_post(f"{CONTROL}/list-mode", self._list_mode)
        app.router.add_post(f"{CONTROL}/expire-tokens", self._expire_tokens)
        app.router.add_post(f"{CONTROL}/reset", self._reset)
        app.router.add_post(f"{CONTROL}/push", self._push)
        self.api_routes(app)
        return app

    def api_routes(self, app: web.Application) -> None:
        raise NotImplementedError

    @web.middleware
    async def _middleware(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        if f"{CONTROL}/" in request.path:
            return await handler(request)
        self.requests.append((request.method, request.path))
        fault = self.faults.take(request.path)
        if fault is not None and fault.kind != "lost_answer":
            return await answer(fault, request)
        if not await self.authorized(request):
            return problem(401, "not authorized")
        response = await handler(request)
        if fault is not None:  # lost_answer: done, but the caller never hears of it in time
            await asyncio.sleep(fault.delay_s)
        return response

    async def authorized(self, request: web.Request) -> bool:
        return True

    def list_page(self, request: web.Request) -> dict[str, Any]:
        """``GET`` order list: changed at or after ``updated_since``, oldest first, paged."""
        since_text = request.query.get("updated_since")
        since = datetime.fromisoformat(since_text.replace("Z", "+00:00")) if since_text else None
        chosen = sorted((listed for listed in self.orders if since is None or listed.updated_at >= since),
                        key=lambda listed: listed.updated_at, reverse=self.out_of_order)
        elements = [self.list_element(listed) for listed in chosen]
        if self.duplicate:
            elements = [element for element in elements for _ in (0, 1)]
        offset = int(request.query.get(self.cursor_param) or 0)
        page = elements[offset:offset + self.page_size]
        following = offset + self.page_size
        return {self.items_key: page, self.cursor_key: str(following) if following < len(elements) else None}

    async def record_status(self, request: web.Request) -> web.Response:
        raw = await request.read()  # (already read, and cached, where the auth check hashed it)
        body = json.loads(raw) if raw else None
        self.status_updates.append(Recorded(request.method, request.path, body, dict(request.headers)))
        return web.json_response({"status": "ok"})

    # --- push -------------------------------------------------------------------------------------

    def sign_push(self, url: str, body: bytes, secret: str | None, order: dict[str, Any]) -> dict[str, str]:
        """The headers that authenticate ``body`` to posint the way this platform does."""
        raise NotImplementedError

    def push_body(self, order: dict[str, Any]) -> dict[str, Any]:
        """The webhook document that carries one order."""
        return {"order": order}

    def cancel_body(self, listed: Listed) -> dict[str, Any]:
        """The webhook document that tells of a cancelled order."""
        return self.push_body({**listed.order, **self.cancelled_fields(listed)})

    async def push_cancel(self, url: str, secret: str | None, order_id: str, reason: str | None = None,
                          timeout_s: float = 10.0) -> dict[str, Any]:
        """Cancel a listed order and push the cancellation, signed, to ``url`` (loopback only)."""
        loopback_only(url)
        listed = self.cancel_order(order_id, reason)
        return await self._send(url, secret, listed.order, self.cancel_body(listed), timeout_s)

    async def push(self, url: str, secret: str | None = None, sample: samples.Sample | None = None,
                   timeout_s: float = 10.0) -> dict[str, Any]:
        """Put a new order on the list and push it, signed, to ``url`` (loopback only). Returns
        what happened: the order id, the HTTP status and body of the answer."""
        loopback_only(url)
        order = self.add_order(sample)
        return await self._send(url, secret, order, self.push_body(order), timeout_s)

    async def _send(self, url: str, secret: str | None, order: dict[str, Any], document: dict[str, Any],
                    timeout_s: float) -> dict[str, Any]:
        body_bytes = json.dumps(document, separators=(",", ":")).encode()
        headers = {"Content-Type": "application/json", **self.sign_push(url, body_bytes, secret, order)}
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=timeout_s), trust_env=False) as session:
            async with session.post(url, data=body_bytes, headers=headers, allow_redirects=False) as response:
                text = await response.text()
                status = response.status
        result = {"provider": self.name, "order_id": self.order_id(order), "url": url, "status": status,
                  "response": text[:2000]}
        self.pushes.append(result)
        return result

    # --- control API ------------------------------------------------------------------------------

    async def _state(self, request: web.Request) -> web.Response:
        return web.json_response({
            "provider": self.name, "orders": [self.list_element(listed) for listed in self.orders],
            "status_updates": [record.to_json() for record in self.status_updates],
            "ledger": [record.to_json() for record in self.ledger],
            "pending_faults": len(self.faults.pending), "injected_faults": [list(item) for item in self.faults.injected],
            "token_requests": self.token_requests, "pushes": self.pushes,
        })

    async def _add_fault(self, request: web.Request) -> web.Response:
        try:
            self.faults.add(Fault.from_json(await request.json()))
        except (ValueError, TypeError, AttributeError) as error:
            return problem(400, str(error))
        return web.json_response({"pending_faults": len(self.faults.pending)}, status=201)

    async def _add_order(self, request: web.Request) -> web.Response:
        document = await request.json() if request.can_read_body else {}
        count = int((document or {}).get("count", 1))
        orders = [self.add_order() for _ in range(max(1, min(count, 100)))]
        return web.json_response({"orders": orders}, status=201)

    async def _cancel_order(self, request: web.Request) -> web.Response:
        """``{"reason"?, "url"?, "secret"?}``: cancel the order; with ``url``, also push the
        cancellation there (as ``_push`` does an order)."""
        document = (await request.json() if request.can_read_body else None) or {}
        if not isinstance(document, dict):
            return problem(400, "the body must be a JSON object")
        order_id, reason, url = request.match_info["order_id"], document.get("reason"), document.get("url")
        if not isinstance(reason, (str, type(None))) or not isinstance(url, (str, type(None))):
            return problem(400, "reason and url must be strings")
        if not any(self.order_id(listed.order) == order_id for listed in self.orders):
            return problem(404, f"no order {order_id} listed")
        if url is None:
            listed = self.cancel_order(order_id, reason)
            return web.json_response({"order_id": order_id, "element": self.list_element(listed)})
        try:
            result = await self.push_cancel(url, document.get("secret"), order_id, reason)
        except ValueError as error:
            return problem(400, str(error))
        except (aiohttp.ClientError, TimeoutError) as error:
            return problem(502, f"the push failed: {type(error).__name__}")
        return web.json_response(result)

    async def _list_mode(self, request: web.Request) -> web.Response:
        document = await request.json()
        self.duplicate = bool(document.get("duplicate", self.duplicate))
        self.out_of_order = bool(document.get("out_of_order", self.out_of_order))
        if "page_size" in document:
            self.page_size = max(1, int(document["page_size"]))
        return web.json_response({"duplicate": self.duplicate, "out_of_order": self.out_of_order,
                                  "page_size": self.page_size})

    async def _expire_tokens(self, request: web.Request) -> web.Response:
        self.expire_tokens()
        return web.json_response({"expired": True})

    async def _reset(self, request: web.Request) -> web.Response:
        self.reset()
        return web.json_response({"reset": True})

    async def _push(self, request: web.Request) -> web.Response:
        document = await request.json()
        url = document.get("url")
        if not isinstance(url, str):
            return problem(400, "url is required")
        try:
            result = await self.push(url, document.get("secret"))
        except ValueError as error:
            return problem(400, str(error))
        except (aiohttp.ClientError, TimeoutError) as error:
            return problem(502, f"the push failed: {type(error).__name__}")
        return web.json_response(result)


def expiry(seconds: int) -> datetime:
    return datetime.now(timezone.utc) + timedelta(seconds=seconds)
