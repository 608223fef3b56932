"""The fake ledgers: QuickBooks Online (sales receipts, ``requestid``) and Xero (invoices,
``Idempotency-Key``). Both issue OAuth access tokens for a refresh-token grant with basic client
authentication and rotate the refresh token; a write repeated with the same idempotency key answers
the first document again and books nothing."""
from __future__ import annotations

import base64
import binascii
import itertools
import secrets
import uuid
from typing import Any

from aiohttp import web

from sandbox.platforms.base import Platform, Recorded, problem
from sandbox.platforms.demo import DEMO_CREDENTIALS


class Ledger(Platform):
    token_path = ""

    def __init__(self, credentials: dict[str, str] | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.credentials = credentials or DEMO_CREDENTIALS[self.name]
        self.refresh_tokens = {self.credentials["refresh_token"]}
        self.revoked = False
        self.refresh_tokens_used: list[str] = []
        self.by_key: dict[str, dict[str, Any]] = {}  # idempotency key -> the answer first given
        self.numbers = itertools.count(1001)

    def reset(self) -> None:
        super().reset()
        self.by_key.clear()
        self.refresh_tokens = {self.credentials["refresh_token"]}
        self.revoked = False

    def revoke_refresh_tokens(self) -> None:
        """The tenant disconnected the app: every refresh token is refused (``invalid_grant``)."""
        self.refresh_tokens.clear()
        self.revoked = True

    def refresh_valid(self, token: object) -> bool:
        """The credentials' token or one this fake issued; also one an earlier run of the sandbox
        issued (by its form), so the demo survives a sandbox restart while the stack keeps the
        rotated token it stored."""
        return not self.revoked and isinstance(token, str) and (
            token in self.refresh_tokens or token.startswith(f"{self.name}-rt-"))

    def api_routes(self, app: web.Application) -> None:
        app.router.add_post(self.token_path, self.token)
        app.router.add_post("/_control/revoke-refresh-tokens", self._revoke)

    async def _revoke(self, request: web.Request) -> web.Response:
        self.revoke_refresh_tokens()
        return web.json_response({"revoked": True})

    async def authorized(self, request: web.Request) -> bool:
        return request.path.endswith(self.token_path) or self.bearer_valid(request)

    def _client_ok(self, request: web.Request) -> bool:
        scheme, _, encoded = request.headers.get("Authorization", "").partition(" ")
        try:
            client_id, _, client_secret = base64.b64decode(encoded).decode().partition(":")
        except (binascii.Error, UnicodeDecodeError):
            return False
        return scheme == "Basic" and (client_id, client_secret) == (self.credentials["client_id"],
                                                                    self.credentials["client_secret"])

    async def token(self, request: web.Request) -> web.Response:
        if not self._client_ok(request):
            return web.json_response({"error": "invalid_client"}, status=401)
        form = await request.post()
        refresh = form.get("refresh_token")
        if form.get("grant_type") != "refresh_token" or not self.refresh_valid(refresh):
            return web.json_response({"error": "invalid_grant"}, status=400)
        self.refresh_tokens_used.append(str(refresh))
        rotated = f"{self.name}-rt-{secrets.token_urlsafe(16)}"
        self.refresh_tokens.add(rotated)
        return web.json_response({**self.issue_token(), "refresh_token": rotated,
                                  "x_refresh_token_expires_in": 8_726_400})

    def book(self, request: web.Request, key: str | None, body: Any, make) -> web.Response:
        if key and key in self.by_key:
            return web.json_response(self.by_key[key])
        answer = make(body)
        self.ledger.append(Recorded(request.method, request.path, body, dict(request.headers)))
        if key:
            self.by_key[key] = answer
        return web.json_response(answer)


class QuickBooks(Ledger):
    name = "quickbooks"
    token_path = "/oauth2/v1/tokens/bearer"

    def api_routes(self, app: web.Application) -> None:
        super().api_routes(app)
        app.router.add_post("/v3/company/{realm_id}/salesreceipt", self.sales_receipt)

    async def sales_receipt(self, request: web.Request) -> web.Response:
        try:
            body = await request.json()
            lines = body["Line"]
        except (ValueError, KeyError, TypeError):
            return web.json_response({"Fault": {"Error": [{"Message": "Request has invalid or unsupported property"}],
                                               "type": "ValidationFault"}}, status=400)

        def receipt(document: dict[str, Any]) -> dict[str, Any]:
            number = next(self.numbers)
            return {"SalesReceipt": {"Id": str(number), "DocNumber": document.get("DocNumber") or str(number),
                                     "TotalAmt": sum(line.get("Amount", 0) for line in lines),
                                     "Line": lines}, "time": "2026-01-04T10:00:00.000-08:00"}

        return self.book(request, request.query.get("requestid"), body, receipt)


class Xero(Ledger):
    name = "xero"
    token_path = "/connect/token"

    def api_routes(self, app: web.Application) -> None:
        super().api_routes(app)
        app.router.add_put("/api.xro/2.0/Invoices", self.invoices)

    async def invoices(self, request: web.Request) -> web.Response:
        if not request.headers.get("Xero-tenant-id"):
            return problem(403, "Xero-tenant-id is required")
        try:
            body = await request.json()
            invoices = body["Invoices"]
            assert isinstance(invoices, list) and invoices
        except (ValueError, KeyError, TypeError, AssertionError):
            return web.json_response({"Type": "ValidationException", "Message": "A validation exception occurred"},
                                     status=400)

        def created(document: dict[str, Any]) -> dict[str, Any]:
            return {"Invoices": [{**invoice, "InvoiceID": str(uuid.uuid4()), "InvoiceNumber": f"INV-{next(self.numbers)}"}
                                 for invoice in invoices]}

        return self.book(request, request.headers.get("Idempotency-Key"), body, created)
