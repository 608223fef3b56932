"""The one small interface the integrations service uses to talk to a provider's API, outbound:
fetch a delivery platform's orders since a watermark, send an order's status back to it, book a
completed order in an accounting ledger. One module per provider implements it
(``integrations.adapters.providers.api.<provider>``); ``client_for`` picks it.

Every client is an aiohttp client on the session it is given (make it with
``posint_common.egress.egress_session``: the SSRF guard), against the integration's configured
``api_base_url`` (so it can point at a sandbox), with connect and total timeouts per request,
retries with backoff and jitter on 429, 5xx, timeouts and dropped connections (``Retry-After``
honoured, capped), and OAuth token refresh where the provider uses OAuth. The service owns the
session (one per process is fine) and closes it; ``close()`` closes what the client itself holds.

Errors are typed so a caller decides without reading messages: ``RetryableError`` (the platform is
busy or away: try again later, the order/run is not at fault), ``PermanentError`` (refused or not
understood: retrying the same request will not help), ``AuthExpired`` (a permanent error: the
credentials or refresh token are no longer accepted; the tenant must reconnect), ``Unsupported``
(the provider or its config has no such operation, e.g. ``custom`` without ``api_base_url``).
Messages never hold a secret or a token.

Tokens: a client that refreshes an OAuth token calls ``on_tokens(TokenSet)`` right after the
refresh, before using it, so the service can store it encrypted (QuickBooks and Xero rotate the
refresh token: the new one must be kept or the next refresh fails). ``client.tokens`` is the
current set (``expires_at`` for the integration's ``health.token_expires_at``); pass a stored set
back as ``tokens=`` so a new client does not refresh again needlessly.
"""
from __future__ import annotations

import functools
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any, Awaitable, Callable, Mapping

import aiohttp

from integrations.adapters import metrics
from posint_common.contracts.inbound import NormalizedOrder
from posint_common.contracts.orders import ExternalOrder


# --- Results ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class FetchedOrder:
    """One order from the platform's list: parsed, and the platform's own document untouched
    (kept as the order's ``raw_data``)."""

    normalized: NormalizedOrder
    raw: dict[str, Any]
    cancelled: bool = False  # the platform lists it as cancelled
    cancel_reason: str | None = None


@dataclass(frozen=True)
class UnparsableOrder:
    """An element of the platform's list that is not an order we understand: counted as
    ``failed`` in the sync run; the rest of the page still counts."""

    raw: Any
    error: str
    external_id: str | None = None


@dataclass(frozen=True)
class FetchResult:
    """Orders new or changed since the ``since`` given, oldest change first, all pages read.
    ``watermark`` is what to pass as ``since`` next time (the latest change time seen, or the
    ``since`` given when nothing came); store it only once the orders are durable. The same order
    may come twice (the platform repeats, pages shift): the caller deduplicates by external id."""

    orders: list[FetchedOrder]
    watermark: datetime | None
    failed: list[UnparsableOrder] = field(default_factory=list)


class OrderStatusKind(StrEnum):
    ACCEPTED = "accepted"
    REJECTED = "rejected"
    READY = "ready"
    CANCELLED = "cancelled"
    EXPIRED = "expired"  # not accepted in time: sent to the platform as a rejection/denial


@dataclass(frozen=True)
class StatusUpdate:
    """What the platform is told about one of its orders. ``prep_time_minutes`` goes with
    ``accepted``; ``reason`` (one of posint_common.contracts.orders.RejectReason, or free text)
    and ``detail`` with ``rejected``/``cancelled``/``expired``."""

    status: OrderStatusKind
    prep_time_minutes: int | None = None
    reason: str | None = None
    detail: str | None = None


@dataclass(frozen=True)
class LedgerRef:
    """The document an accounting push created (QuickBooks sales receipt ``Id``, Xero
    ``InvoiceID``), and its human number where the ledger gives one. Keep it in the durable map
    order -> ledger document."""

    ledger_id: str
    number: str | None = None


@dataclass(frozen=True)
class TokenSet:
    """An OAuth access token with its expiry, and the refresh token when the provider rotates it."""

    access_token: str
    expires_at: datetime | None
    refresh_token: str | None = None

    def __repr__(self) -> str:  # never show a token in a log line or a traceback
        return f"TokenSet(expires_at={self.expires_at!r})"


TokenSink = Callable[[TokenSet], Awaitable[None]]


@dataclass(frozen=True)
class ClientOptions:
    """Timeouts and retry schedule of every call (compressible for tests). A call is attempted at
    most ``attempts`` times within ``deadline_s``; the wait before a retry is exponential from
    ``wait_initial_s`` to ``wait_max_s`` with up to ``wait_jitter_s`` jitter, or the platform's
    ``Retry-After`` when it sends one (never more than ``retry_after_max_s``: longer is a
    ``RetryableError`` at once, with ``retry_after`` set, for the caller to schedule)."""

    connect_timeout_s: float = 5.0
    total_timeout_s: float = 15.0
    attempts: int = 4
    deadline_s: float = 45.0
    wait_initial_s: float = 0.2
    wait_max_s: float = 5.0
    wait_jitter_s: float = 0.5
    retry_after_max_s: float = 30.0
    page_limit: int = 100  # pages read per fetch_orders at most (a runaway cursor stops here)


# --- Errors ----------------------------------------------------------------------------------


class ProviderError(Exception):
    """A call to a provider failed. ``status`` is the HTTP status when there was a response."""

    retryable: bool = False

    def __init__(self, message: str, *, status: int | None = None, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.retry_after = retry_after


class RetryableError(ProviderError):
    """429, 5xx, timeout or connection failure, still so after the client's own retries."""

    retryable = True


class PermanentError(ProviderError):
    """A 4xx other than 429 (after one token refresh for 401), or a response we cannot parse."""


class AuthExpired(PermanentError):
    """The credentials or refresh token are refused: the tenant must reconnect the integration."""


class Unsupported(PermanentError):
    """The provider (or this integration's config) has no such operation."""


# --- The interface ----------------------------------------------------------------------------


class ProviderClient:
    """Base of every provider client. A delivery client implements ``fetch_orders`` and
    ``push_status``, an accounting client ``push_sale``; the others raise ``Unsupported``."""

    provider: str = ""

    def __init__(self, session: aiohttp.ClientSession, options: ClientOptions) -> None:
        self.session = session
        self.options = options
        self.tokens: TokenSet | None = None

    def __init_subclass__(cls, **kwargs: Any) -> None:
        """Every provider's operations name themselves to the transport's metrics (the
        ``operation`` label of each HTTP attempt), whichever module implements them."""
        super().__init_subclass__(**kwargs)
        for name in ("fetch_orders", "push_status", "push_sale"):
            if name in cls.__dict__:
                setattr(cls, name, _labelled(name, cls.__dict__[name]))

    async def fetch_orders(self, since: datetime | None) -> FetchResult:
        """Orders new or changed at the platform since ``since`` (None: as far back as it keeps)."""
        raise Unsupported(f"{self.provider} has no order list")

    async def push_status(self, external_id: str, update: StatusUpdate) -> None:
        """Tell the platform what became of its order ``external_id``. Idempotent at the
        platforms we know: sending the same update twice is harmless."""
        raise Unsupported(f"{self.provider} takes no status updates")

    async def push_sale(self, order: ExternalOrder, idempotency_key: str) -> LedgerRef:
        """Book a completed order in the ledger. ``idempotency_key`` must be the same on every
        retry of one order (e.g. ``posint-<tenant>-<order id>``): the ledger then books it once
        (QuickBooks ``requestid``, Xero ``Idempotency-Key``)."""
        raise Unsupported(f"{self.provider} has no ledger")

    async def close(self) -> None:
        """Release what the client holds (not the session, which the caller owns)."""


def _labelled(operation: str, method: Callable[..., Awaitable[Any]]) -> Callable[..., Awaitable[Any]]:
    @functools.wraps(method)
    async def call(self: ProviderClient, *args: Any, **kwargs: Any) -> Any:
        with metrics.operation(operation):
            return await method(self, *args, **kwargs)

    return call


def client_for(
    provider: str,
    config: Mapping[str, Any],
    credentials: Mapping[str, str],
    session: aiohttp.ClientSession,
    *,
    options: ClientOptions | None = None,
    tokens: TokenSet | None = None,
    on_tokens: TokenSink | None = None,
) -> ProviderClient:
    """The client of ``provider`` for one integration: its validated ``config`` (as stored, with
    defaults) and its decrypted ``credentials`` (plain strings). ``tokens``: the last stored
    token set, if any; ``on_tokens``: called with every new token set (store it encrypted)."""
    from integrations.adapters.providers.api import CLIENTS  # the modules import this one

    try:
        factory = CLIENTS[provider]
    except KeyError:
        raise Unsupported(f"no API client for provider {provider!r}") from None
    return factory(config, credentials, session, options or ClientOptions(), tokens, on_tokens)
