"""What the ledger clients share: the OAuth refresh-token grant (QuickBooks and Xero alike:
client id and secret as HTTP basic auth, ``grant_type=refresh_token``; both rotate the refresh
token, so every new one is handed to ``on_tokens`` before use) and the lines of a sale."""
from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Mapping

import aiohttp

from integrations.adapters.providers.api.transport import OAuth, Transport
from integrations.adapters.providers.client import ProviderClient, TokenSet, TokenSink
from posint_common.contracts.orders import ExternalOrder


def refresh_token_auth(client: ProviderClient, config: Mapping[str, Any], credentials: Mapping[str, str],
                       session: aiohttp.ClientSession, tokens: TokenSet | None, on_tokens: TokenSink | None) -> OAuth:
    basic = {"Authorization": aiohttp.encode_basic_auth(credentials["client_id"], credentials["client_secret"])}

    def grant(current: TokenSet | None) -> tuple[dict[str, str], dict[str, str]]:
        refresh = (current.refresh_token if current and current.refresh_token else None) or credentials["refresh_token"]
        return {"grant_type": "refresh_token", "refresh_token": refresh}, basic

    tokens_http = Transport(client.provider, session, client.options, config["token_url"])
    return OAuth(tokens_http, config["token_url"], grant, tokens, on_tokens, owner=client)


@dataclass(frozen=True)
class Line:
    description: str
    quantity: int
    unit_price: Decimal

    @property
    def amount(self) -> Decimal:
        return self.unit_price * self.quantity


def sale_lines(order: ExternalOrder) -> list[Line]:
    """One line per item with its modifiers priced in (per unit), then the tip as a line of its
    own; tax is booked separately by each ledger. The lines add up to ``subtotal + tip``
    whenever the platform's subtotal is the sum of its items."""
    lines = []
    for item in order.items:
        extras = sum((modifier.unit_price * modifier.quantity for modifier in item.modifiers), Decimal("0"))
        names = ", ".join(modifier.name for modifier in item.modifiers)
        lines.append(Line(f"{item.name} ({names})" if names else item.name, item.quantity, item.unit_price + extras))
    if order.tip:
        lines.append(Line("Tip", 1, order.tip))
    return lines
