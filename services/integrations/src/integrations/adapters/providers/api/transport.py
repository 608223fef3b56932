"""What every provider client shares: one request with both timeouts, retried with backoff and
jitter (``stamina``) on 429, 5xx, timeouts and dropped connections, ``Retry-After`` honoured; a
401 answered by one token refresh; the response read bounded and parsed as a JSON object; and the
OAuth token endpoint (client credentials or refresh token grant)."""
from __future__ import annotations

import asyncio
import email.utils
import json
import time
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from typing import Any, Callable, Mapping
from urllib.parse import urlencode

import aiohttp
import stamina
import yarl

from integrations.adapters import metrics
from integrations.adapters.providers.client import (
    AuthExpired, ClientOptions, PermanentError, RetryableError, TokenSet, TokenSink,
)
from posint_common.egress import refused

MAX_RESPONSE_BYTES = 4 * 1024 * 1024
EXPIRY_MARGIN_S = 60.0  # refresh a token this long before it expires
Headers = Mapping[str, str]


class _Transient(Exception):
    """One attempt failed in a way worth another: the hook below decides the wait."""

    def __init__(self, message: str, status: int | None = None, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.retry_after = retry_after


class _Unauthorized(Exception):
    pass


def retry_after_seconds(value: str | None, now: float | None = None) -> float | None:
    """``Retry-After`` as seconds: delta-seconds or an HTTP date; None when absent or unreadable."""
    if not value:
        return None
    value = value.strip()
    try:  # delta-seconds (a fraction accepted: the sandbox compresses time in tests)
        seconds = float(value)
        return seconds if seconds >= 0 and seconds == seconds and seconds != float("inf") else None
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=timezone.utc)
    return max(0.0, when.timestamp() - (time.time() if now is None else now))


def dumps(document: Any) -> bytes:
    """JSON bytes of a provider payload; Decimals become JSON numbers (the ledgers take numbers).
    Our amounts (and line amounts, price x quantity) have at most 15 significant digits, so the
    float's shortest repr is exactly the decimal's digits: ``Decimal("10.99")`` is written
    ``10.99``, never ``10.990000000000000213`` (``10.50`` is written ``10.5``: the same number)."""

    def convert(value: Any) -> Any:
        if isinstance(value, Decimal):
            return float(value)
        if isinstance(value, dict):
            return {key: convert(item) for key, item in value.items()}
        if isinstance(value, (list, tuple)):
            return [convert(item) for item in value]
        return value

    return json.dumps(convert(document), separators=(",", ":")).encode()


class Auth:
    """How a request is authenticated. ``headers`` sees the method, the URL's path with its query
    (as sent, base URL path included) and the exact body (Grubhub's MAC covers them); ``refresh``
    is called once after a 401 (False: nothing to refresh, the 401 is ``AuthExpired``)."""

    async def headers(self, method: str, path: str, body: bytes) -> dict[str, str]:
        return {}

    async def refresh(self) -> bool:
        return False


class Transport:
    """HTTP to one provider's ``base_url`` with the retry schedule of ``options``."""

    def __init__(self, provider: str, session: aiohttp.ClientSession, options: ClientOptions, base_url: str,
                 auth: Auth | None = None) -> None:
        self.provider = provider
        self.session = session
        self.options = options
        self.base_url = base_url.rstrip("/")
        self.auth = auth or Auth()
        self.timeout = aiohttp.ClientTimeout(total=options.total_timeout_s, connect=options.connect_timeout_s,
                                             sock_connect=options.connect_timeout_s)

    async def request(self, method: str, path: str, *, json_body: Any = None, form: Mapping[str, str] | None = None,
                      params: Mapping[str, str] | None = None, headers: Headers | None = None,
                      url: str | None = None) -> dict[str, Any] | None:
        """The parsed JSON object of a 2xx answer (None for an empty body). ``params`` become the
        query string (signed with the path where the auth signs it); ``url`` replaces
        ``base_url + path`` (the token endpoint lives elsewhere)."""
        if json_body is not None:
            body, content_type = dumps(json_body), "application/json"
        elif form is not None:
            body, content_type = urlencode(dict(form)).encode(), "application/x-www-form-urlencoded"
        else:
            body, content_type = b"", None
        if params:
            path = f"{path}?{urlencode(dict(params))}"
        target = url or f"{self.base_url}{path}"
        refreshed = False
        while True:
            try:
                return await self._retried(method, target, yarl.URL(target).raw_path_qs, body, content_type, headers)
            except _Unauthorized:
                if refreshed or not await self.auth.refresh():
                    raise AuthExpired(f"{self.provider} refused the credentials (401)", status=401) from None
                refreshed = True

    async def _retried(self, method, target, path, body, content_type, headers):
        options = self.options

        def backoff(error: Exception) -> bool | float:
            if not isinstance(error, _Transient):
                return False
            if error.retry_after is None:
                return True
            return error.retry_after if error.retry_after <= options.retry_after_max_s else False

        try:
            async for attempt in stamina.retry_context(
                on=backoff, attempts=options.attempts, timeout=options.deadline_s,
                wait_initial=options.wait_initial_s, wait_max=options.wait_max_s, wait_jitter=options.wait_jitter_s,
            ):
                with attempt:
                    return await self._once(method, target, path, body, content_type, headers)
        except _Transient as error:
            raise RetryableError(f"{self.provider}: {error}", status=error.status,
                                 retry_after=error.retry_after) from None
        return None  # pragma: no cover - the loop returns or raises

    async def _once(self, method, target, path, body, content_type, headers):
        sent = dict(headers or {})
        sent.update(await self.auth.headers(method, path, body))
        if content_type:
            sent["Content-Type"] = content_type
        sent.setdefault("Accept", "application/json")
        operation, started = metrics.OPERATION.get(), time.perf_counter()
        try:
            async with self.session.request(method, target, data=body or None, headers=sent,
                                            timeout=self.timeout, allow_redirects=False) as response:
                payload = await response.content.read(MAX_RESPONSE_BYTES + 1)
                status = response.status
                retry_after = retry_after_seconds(response.headers.get("Retry-After"))
        except (asyncio.TimeoutError, aiohttp.ServerTimeoutError):
            self._observe(operation, "timeout", started)
            raise _Transient("timed out") from None
        except aiohttp.ClientError as error:
            if refused(error):
                self._observe(operation, "refused", started)
                raise PermanentError(f"{self.provider}: the egress guard refused the address") from None
            self._observe(operation, "connect_error", started)
            raise _Transient(f"connection failed ({type(error).__name__})") from None
        self._observe(operation, metrics.request_outcome(status), started)
        if status == 429 or status >= 500:
            raise _Transient(f"HTTP {status}", status, retry_after)
        if status == 401:
            raise _Unauthorized()
        if status >= 300:
            raise PermanentError(f"{self.provider} answered HTTP {status}: {_problem_text(payload)}", status=status)
        if len(payload) > MAX_RESPONSE_BYTES:
            raise PermanentError(f"{self.provider} answered more than {MAX_RESPONSE_BYTES} bytes", status=status)
        if not payload.strip():
            return None
        try:
            document = json.loads(payload)
        except ValueError:
            raise PermanentError(f"{self.provider} answered HTTP {status} with a body that is not JSON",
                                 status=status) from None
        if not isinstance(document, dict):
            raise PermanentError(f"{self.provider} answered HTTP {status} with JSON that is not an object",
                                 status=status)
        return document

    def _observe(self, operation: str, outcome: str, started: float) -> None:
        """Count one attempt (a cancelled one, e.g. at a sync run's own deadline, is not counted)."""
        metrics.PROVIDER_REQUESTS.labels(self.provider, operation, outcome).inc()
        metrics.PROVIDER_SECONDS.labels(self.provider, operation).observe(time.perf_counter() - started)


def _problem_text(payload: bytes) -> str:
    """A short, printable excerpt of an error body (never a secret of ours: we sent none back)."""
    text = payload[:200].decode("utf-8", "replace")
    return "".join(char if char.isprintable() else " " for char in text).strip() or "(empty body)"


def expected(document: Any, *keys: str, provider: str) -> Any:
    """``document[k1][k2]...``, or a PermanentError saying the response lacked it."""
    value = document
    for key in keys:
        if not isinstance(value, dict) or key not in value:
            raise PermanentError(f"{provider} answered without {'.'.join(keys)}")
        value = value[key]
    return value


class OAuth(Auth):
    """Bearer tokens from an OAuth 2.0 token endpoint, refreshed shortly before they expire and
    once after a 401. ``grant`` gives the form and the headers (client authentication) of a token
    request;
    a refused grant (400/401, e.g. ``invalid_grant``) is ``AuthExpired``."""

    def __init__(self, transport_for_tokens: Transport, token_url: str,
                 grant: Callable[[TokenSet | None], tuple[dict[str, str], dict[str, str]]],
                 tokens: TokenSet | None, on_tokens: TokenSink | None, owner: Any) -> None:
        self.transport = transport_for_tokens
        self.token_url = token_url
        self.grant = grant
        self.owner = owner  # the client: its ``tokens`` attribute is kept current
        self.owner.tokens = tokens
        self.on_tokens = on_tokens
        self.lock = asyncio.Lock()

    def _fresh(self) -> bool:
        tokens = self.owner.tokens
        if tokens is None or not tokens.access_token:
            return False
        if tokens.expires_at is None:
            return True
        return tokens.expires_at - timedelta(seconds=EXPIRY_MARGIN_S) > datetime.now(timezone.utc)

    async def headers(self, method: str, path: str, body: bytes) -> dict[str, str]:
        if not self._fresh():
            async with self.lock:
                if not self._fresh():
                    await self._fetch()
        return {"Authorization": f"Bearer {self.owner.tokens.access_token}"}

    async def refresh(self) -> bool:
        stale = self.owner.tokens
        async with self.lock:
            if self.owner.tokens is stale:  # another call refreshed meanwhile: use that
                await self._fetch()
        return True

    async def _fetch(self) -> None:
        form, headers = self.grant(self.owner.tokens)
        provider = self.transport.provider
        try:
            with metrics.operation("token"):
                document = await self.transport.request("POST", "", form=form, headers=headers, url=self.token_url)
        except PermanentError as error:
            if error.status in (400, 401, 403) or isinstance(error, AuthExpired):
                raise AuthExpired(f"{provider} refused the token request (HTTP {error.status})",
                                  status=error.status) from None
            raise
        access = expected(document, "access_token", provider=provider)
        expires_in = document.get("expires_in") if document else None
        if not isinstance(access, str) or not access or (
                expires_in is not None and (not isinstance(expires_in, int) or isinstance(expires_in, bool))):
            raise PermanentError(f"{provider} token response is malformed")
        previous = self.owner.tokens
        refresh_token = document.get("refresh_token") or (previous.refresh_token if previous else None)
        tokens = TokenSet(
            access_token=access,
            expires_at=(datetime.now(timezone.utc) + timedelta(seconds=expires_in)).replace(microsecond=0)
            if expires_in is not None else None,
            refresh_token=refresh_token if isinstance(refresh_token, str) else None,
        )
        if self.on_tokens is not None:
            await self.on_tokens(tokens)  # stored before use: a rotated refresh token is never lost
        self.owner.tokens = tokens
