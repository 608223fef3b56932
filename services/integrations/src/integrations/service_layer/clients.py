"""Provider API clients, one per integration and process, on one egress-guarded session.

A client is kept while its integration is unchanged (same ``updated_at``: a PATCH of config or
credentials builds a new one), so an OAuth token is refreshed once and then reused by the sync
runs, status pushes and ledger pushes of this process. A rotated refresh token (QuickBooks, Xero)
is sealed into the stored credentials at once, before the new access token is used: losing it would
lock the integration out at its next refresh."""
from __future__ import annotations

import asyncio
import json
from dataclasses import replace
from datetime import datetime

import aiohttp
import asyncpg

from posint_common.egress import EgressPolicy, egress_session
from posint_common.log import get_logger

from integrations.adapters.providers.client import ClientOptions, ProviderClient, ProviderError, TokenSet, client_for
from integrations.adapters.vault import associated_data
from integrations.domain.model import CREDENTIALS, Integration, Sealed
from integrations.service_layer.secrets import Secrets

log = get_logger(__name__)

MAX_ERROR_CHARS = 500


def describe(error: ProviderError) -> str:
    """What a run or a push shows of a provider error: the client's message (never a secret, by the
    client's contract) with the platform's HTTP status."""
    text = str(error) or type(error).__name__
    if error.status is not None and str(error.status) not in text:
        text = f"{text} (HTTP {error.status})"
    return text[:MAX_ERROR_CHARS]


class Clients:
    def __init__(self, pool: asyncpg.Pool, secrets: Secrets, egress: EgressPolicy, options: ClientOptions) -> None:
        self.pool = pool
        self.secrets = secrets
        self.egress = egress
        self.options = options
        self._session: aiohttp.ClientSession | None = None
        self._clients: dict[int, tuple[datetime, ProviderClient]] = {}
        self._retired: list[ProviderClient] = []

    @property
    def session(self) -> aiohttp.ClientSession:
        if self._session is None:
            self._session = egress_session(self.egress, connect_timeout_s=self.options.connect_timeout_s,
                                           total_timeout_s=self.options.total_timeout_s)
        return self._session

    def for_integration(self, integration: Integration) -> ProviderClient:
        """The integration's client; raises the client module's ``Unsupported`` when there is none."""
        cached = self._clients.get(integration.id)
        if cached is not None and cached[0] == integration.updated_at:
            return cached[1]
        if cached is not None:
            self._retired.append(cached[1])  # closed with the others: a run may still be using it
        credentials = self.secrets.credentials(integration) or {}

        async def store(tokens: TokenSet) -> None:
            await self._store_tokens(integration, tokens)

        client = client_for(integration.provider, integration.config, credentials, self.session,
                            options=self.options, on_tokens=store)
        self._clients[integration.id] = (integration.updated_at, client)
        return client

    async def _store_tokens(self, integration: Integration, tokens: TokenSet) -> None:
        async with self.pool.acquire() as conn, conn.transaction():
            if tokens.refresh_token:
                row = await conn.fetchrow(
                    "SELECT credentials, credentials_key_id FROM integrations WHERE id = $1 FOR UPDATE", integration.id)
                current = self.secrets.credentials(_with_credentials(integration, row)) or {}
                if current.get("refresh_token") != tokens.refresh_token:
                    sealed = self.secrets.keys.seal(
                        _json({**current, "refresh_token": tokens.refresh_token}),
                        associated_data(integration.tenant_id, integration.id, CREDENTIALS),
                    )
                    await conn.execute(
                        "UPDATE integrations SET credentials = $2, credentials_key_id = $3 WHERE id = $1",
                        integration.id, sealed.blob, sealed.key_id,
                    )
            await conn.execute("UPDATE integrations SET token_expires_at = $2 WHERE id = $1",
                               integration.id, tokens.expires_at)
        log.info("provider_tokens_stored", integration_id=integration.id, rotated=bool(tokens.refresh_token))

    async def close(self) -> None:
        clients = [client for _, client in self._clients.values()] + self._retired
        self._clients.clear()
        self._retired.clear()
        await asyncio.gather(*(client.close() for client in clients), return_exceptions=True)
        if self._session is not None:
            await self._session.close()
            self._session = None


def _with_credentials(integration: Integration, row: asyncpg.Record) -> Integration:
    """The integration with its credentials as stored now (another refresh may have rotated them)."""
    sealed = Sealed(row["credentials_key_id"], bytes(row["credentials"])) if row["credentials"] is not None else None
    return replace(integration, credentials=sealed)


def _json(values: dict) -> bytes:
    return json.dumps(values).encode()
