"""One delivery attempt: a Standard Webhooks message (signed with the ``standardwebhooks``
package), posted through the egress guard, redirects not followed, both timeouts bounded; the
outcome is measured and never raises."""
from __future__ import annotations

import asyncio
import json
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

import aiohttp
from aiohttp.abc import AbstractResolver
from prometheus_client import Counter, Histogram
from standardwebhooks import Webhook

from posint_common.egress import CONNECT_TIMEOUT_S, TOTAL_TIMEOUT_S, EgressPolicy, egress_session, refused

ATTEMPTS = Counter("posint_webhook_attempts_total", "Webhook delivery attempts by outcome", ["outcome"])
ATTEMPT_SECONDS = Histogram(
    "posint_webhook_attempt_seconds", "Webhook delivery attempt latency, connect to last byte",
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 15),
)
OUTCOMES = ("success", "http_error", "timeout", "connect_error", "ssrf_blocked")
COUNTED = {outcome: ATTEMPTS.labels(outcome) for outcome in OUTCOMES}  # looked up once, not per attempt
BODY_KEPT = 1024  # the first KiB of the receiver's answer is kept with the attempt


@dataclass(frozen=True)
class Attempt:
    message_id: str
    outcome: str
    status_code: int | None
    latency_ms: float
    error: str | None
    response_body: str | None
    attempted_at: datetime
    retry_after: str | None = None  # the receiver's Retry-After header, as sent

    @property
    def success(self) -> bool:
        return self.outcome == "success"


def message(event_type: str, data: dict[str, Any], at: datetime) -> str:
    """The Standard Webhooks body ``{"type", "timestamp", "data"}``, exactly the bytes signed and sent."""
    stamp = at.astimezone(timezone.utc).isoformat().replace("+00:00", "Z")
    return json.dumps({"type": event_type, "timestamp": stamp, "data": data}, separators=(",", ":"))


def signer(secret: str) -> Webhook:
    """The signing object of one secret (decodes it once; kept per endpoint by the deliverer)."""
    return Webhook(secret)


def headers(secret: str | list[str | Webhook], message_id: str, at: datetime, body: str) -> dict[str, str]:
    """Standard Webhooks headers; with several secrets (during a rotation) one signature each,
    space-separated, the newest first. A secret is given as text or as its ``signer``."""
    secrets = [secret] if isinstance(secret, str) else secret
    signers = [each if isinstance(each, Webhook) else signer(each) for each in secrets]
    return {
        "webhook-id": message_id,
        "webhook-timestamp": str(int(at.timestamp())),
        "webhook-signature": signers[0].sign(message_id, at, body) if len(signers) == 1 else
        " ".join(each.sign(message_id, at, body) for each in signers),
        "content-type": "application/json",
        "user-agent": "posint-webhooks/1",
    }


class Sender:
    """Owns the one guarded client session of the dispatcher (opened on first use)."""

    def __init__(self, egress: EgressPolicy, *, connect_timeout_s: float = CONNECT_TIMEOUT_S,
                 total_timeout_s: float = TOTAL_TIMEOUT_S, connections: int = 1000,
                 resolver: AbstractResolver | None = None) -> None:
        self.egress = egress
        self.connect_timeout_s, self.total_timeout_s = connect_timeout_s, total_timeout_s
        self.connections = connections  # the lanes bound attempts; this only bounds sockets
        self.resolver = resolver  # tests pass one they control; None: the system's, behind the guard
        self._session: aiohttp.ClientSession | None = None
        self._timeout = self._timeout_of(total_timeout_s)  # the usual one, made once

    def _timeout_of(self, total_s: float) -> aiohttp.ClientTimeout:
        return aiohttp.ClientTimeout(total=min(total_s, self.total_timeout_s), connect=self.connect_timeout_s,
                                     sock_connect=self.connect_timeout_s)

    def _client(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = egress_session(self.egress, connect_timeout_s=self.connect_timeout_s,
                                           total_timeout_s=self.total_timeout_s, limit=self.connections,
                                           resolver=self.resolver)
        return self._session

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()

    async def send(self, url: str, secret: str, message_id: str, event_type: str, data: dict[str, Any],
                   *, total_timeout_s: float | None = None) -> Attempt:
        """Make the body now and post it (the test ping)."""
        return await self.post(url, [secret], message_id, message(event_type, data, datetime.now(timezone.utc)),
                               total_timeout_s=total_timeout_s)

    async def post(self, url: str, secrets: list[str | Webhook], message_id: str, body: str, *,
                   total_timeout_s: float | None = None) -> Attempt:
        """One attempt with a recorded body (its stored text, signed and sent as is), signed now
        with each secret (text or its ``signer``)."""
        at = datetime.now(timezone.utc)
        timeout = self._timeout_of(total_timeout_s) if total_timeout_s else self._timeout
        started = time.monotonic()
        status, error, answer, retry_after = None, None, None, None
        try:
            async with self._client().post(url, data=body.encode(), headers=headers(secrets, message_id, at, body),
                                           allow_redirects=False, timeout=timeout) as response:
                status = response.status
                retry_after = response.headers.get("Retry-After")
                answer = (await response.content.read(BODY_KEPT)).decode("utf-8", "replace")
            outcome = "success" if 200 <= status < 300 else "http_error"
            error = None if outcome == "success" else f"HTTP {status}"
        except Exception as failure:  # noqa: BLE001 -- every failure is an outcome, never an exception
            if refused(failure):
                outcome, error = "ssrf_blocked", "the address is not allowed (egress guard)"
            elif isinstance(failure, (asyncio.TimeoutError, aiohttp.ServerTimeoutError)):
                outcome, error = "timeout", "no complete answer in time"
            else:
                outcome, error = "connect_error", type(failure).__name__
        latency = time.monotonic() - started
        COUNTED[outcome].inc()
        ATTEMPT_SECONDS.observe(latency)
        return Attempt(message_id, outcome, status, round(latency * 1000, 1), error, answer, at, retry_after)
