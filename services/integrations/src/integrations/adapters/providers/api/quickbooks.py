"""QuickBooks Online Accounting API client: a completed order becomes a sales receipt.

Documented (Intuit's public docs): OAuth 2.0 refresh-token grant at ``token_url`` (basic auth
with the app's client id and secret; access tokens last an hour, the refresh token rotates);
``POST /v3/company/{realm_id}/salesreceipt?requestid=<key>&minorversion=75`` answering
``{"SalesReceipt": {"Id", "DocNumber", ...}}``. ``requestid`` is Intuit's idempotency: the same id
answers the same receipt instead of booking twice.

Guessed or simplified: each line is ``SalesItemLineDetail`` with ``ItemRef: {"name": <item
name>}`` (a real company file wants the id of an existing item; mapping our items to QuickBooks
items is not configurable yet), tax as ``TxnTaxDetail.TotalTax``, the tip as a line of its own,
``DocNumber`` = the platform's order id (cut to QuickBooks' 21 characters).
"""
from __future__ import annotations

from typing import Any, Mapping
from urllib.parse import quote

import aiohttp

from integrations.adapters.providers.api.accounting import refresh_token_auth, sale_lines
from integrations.adapters.providers.api.transport import Transport, expected
from integrations.adapters.providers.client import (
    ClientOptions, LedgerRef, PermanentError, ProviderClient, TokenSet, TokenSink,
)
from posint_common.contracts.orders import ExternalOrder

MINOR_VERSION = "75"


class QuickBooksClient(ProviderClient):
    provider = "quickbooks"

    def __init__(self, config: Mapping[str, Any], credentials: Mapping[str, str], session: aiohttp.ClientSession,
                 options: ClientOptions, tokens: TokenSet | None = None, on_tokens: TokenSink | None = None) -> None:
        super().__init__(session, options)
        self.company = f"/v3/company/{quote(config['realm_id'], safe='')}"
        auth = refresh_token_auth(self, config, credentials, session, tokens, on_tokens)
        self.http = Transport(self.provider, session, options, config["api_base_url"], auth)

    async def push_sale(self, order: ExternalOrder, idempotency_key: str) -> LedgerRef:
        receipt = {
            "DocNumber": order.external_id[:21],
            "TxnDate": order.placed_at.date().isoformat(),
            "PrivateNote": f"posint order {order.id} ({order.external_id})",
            "CurrencyRef": {"value": order.currency},
            "Line": [{"DetailType": "SalesItemLineDetail", "Amount": line.amount, "Description": line.description,
                      "SalesItemLineDetail": {"ItemRef": {"name": line.description[:100]}, "Qty": line.quantity,
                                              "UnitPrice": line.unit_price}}
                     for line in sale_lines(order)],
            "TxnTaxDetail": {"TotalTax": order.tax},
        }
        document = await self.http.request("POST", f"{self.company}/salesreceipt",
                                           params={"requestid": idempotency_key, "minorversion": MINOR_VERSION},
                                           json_body=receipt)
        ledger_id = expected(document, "SalesReceipt", "Id", provider=self.provider)
        number = document["SalesReceipt"].get("DocNumber")
        if not isinstance(ledger_id, (str, int)) or isinstance(ledger_id, bool):
            raise PermanentError("quickbooks answered a malformed SalesReceipt.Id")
        return LedgerRef(str(ledger_id), number if isinstance(number, str) else None)
