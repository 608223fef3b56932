"""Xero Accounting API client: a completed order becomes an authorised sales invoice (ACCREC).

Documented (Xero's public docs): OAuth 2.0 refresh-token grant at ``token_url`` (basic auth with
the app's client id and secret; access tokens last 30 minutes, the refresh token rotates); ``PUT
/api.xro/2.0/Invoices`` with the ``Xero-tenant-id`` and ``Idempotency-Key`` headers (Xero answers a
repeated key with the first response instead of creating again), answering ``{"Invoices":
[{"InvoiceID", "InvoiceNumber", ...}]}``.

Guessed or simplified: ``LineAmountTypes: "NoTax"`` with the tax as a line of its own and the tip
as another (mapping to the organisation's tax rates and account codes is not configurable yet,
no ``AccountCode`` is sent); ``Contact.Name`` = the customer's name or the provider; ``Reference``
= the platform's order id; ``Date`` and ``DueDate`` = the day it was placed.
"""
from __future__ import annotations

from typing import Any, Mapping

import aiohttp

from integrations.adapters.providers.api.accounting import refresh_token_auth, sale_lines
from integrations.adapters.providers.api.transport import Transport, expected
from integrations.adapters.providers.client import (
    ClientOptions, LedgerRef, PermanentError, ProviderClient, TokenSet, TokenSink,
)
from posint_common.contracts.orders import ExternalOrder


class XeroClient(ProviderClient):
    provider = "xero"

    def __init__(self, config: Mapping[str, Any], credentials: Mapping[str, str], session: aiohttp.ClientSession,
                 options: ClientOptions, tokens: TokenSet | None = None, on_tokens: TokenSink | None = None) -> None:
        super().__init__(session, options)
        self.tenant = config["xero_tenant_id"]
        auth = refresh_token_auth(self, config, credentials, session, tokens, on_tokens)
        self.http = Transport(self.provider, session, options, config["api_base_url"], auth)

    async def push_sale(self, order: ExternalOrder, idempotency_key: str) -> LedgerRef:
        day = order.placed_at.date().isoformat()
        lines = [{"Description": line.description, "Quantity": line.quantity, "UnitAmount": line.unit_price}
                 for line in sale_lines(order)]
        if order.tax:
            lines.append({"Description": "Tax", "Quantity": 1, "UnitAmount": order.tax})
        invoice = {"Type": "ACCREC", "Contact": {"Name": order.customer.name or f"posint {order.integration_id}"},
                   "Date": day, "DueDate": day, "Reference": order.external_id, "CurrencyCode": order.currency,
                   "LineAmountTypes": "NoTax", "Status": "AUTHORISED", "LineItems": lines}
        document = await self.http.request(
            "PUT", "/api.xro/2.0/Invoices", json_body={"Invoices": [invoice]},
            headers={"Xero-tenant-id": self.tenant, "Idempotency-Key": idempotency_key})
        invoices = expected(document, "Invoices", provider=self.provider)
        if not isinstance(invoices, list) or not invoices or not isinstance(invoices[0], dict) \
                or not isinstance(invoices[0].get("InvoiceID"), str):
            raise PermanentError("xero answered without an InvoiceID")
        number = invoices[0].get("InvoiceNumber")
        return LedgerRef(invoices[0]["InvoiceID"], number if isinstance(number, str) else None)
