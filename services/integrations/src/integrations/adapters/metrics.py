"""The integrations service's Prometheus metrics: sync runs and the orders they hand over, every HTTP
attempt at a provider, signed inbound pushes, and platform pushes (status updates, ledger
bookings). Labels are bounded: a provider name (or ``unknown``), an operation, an outcome; never an
id. Defined here, the lowest layer that talks to the outside world, so the provider transport and
the service layer both count without importing upwards.

The series the alerts count with ``increase()`` start at 0 for every provider at import (a counter
whose first sample is already 1 shows no increase, so the first failure would go unseen); provider
requests appear with each provider's first call."""
from __future__ import annotations

from contextlib import contextmanager
from contextvars import ContextVar
from typing import Iterator

from prometheus_client import Counter, Histogram

from posint_common.contracts.providers import PROVIDER_TYPES, IntegrationType

SYNC_RUNS = Counter("posint_sync_runs_total", "Sync runs finished, by outcome (a run cut off by a crash counts as failed)",
                    ["provider", "outcome"])
SYNC_ORDERS = Counter("posint_sync_orders_total", "Orders a sync run fetched, by what became of them",
                      ["provider", "result"])
PROVIDER_REQUESTS = Counter("posint_provider_requests_total",
                            "HTTP attempts at a provider's API (each retry counts), by operation and outcome",
                            ["provider", "operation", "outcome"])
PROVIDER_SECONDS = Histogram(
    "posint_provider_request_seconds", "One HTTP attempt at a provider's API, connect to last byte",
    ["provider", "operation"], buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 15, 30),
)
INBOUND = Counter("posint_inbound_requests_total", "Signed inbound pushes (POST /integrations/{id}/inbound) by outcome",
                  ["provider", "outcome"])
PLATFORM_PUSHES = Counter("posint_platform_pushes_total",
                          "Status updates and ledger bookings pushed to a platform, by outcome of each try",
                          ["provider", "kind", "outcome"])

SYNC_OUTCOMES = ("succeeded", "failed")
SYNC_RESULTS = ("created", "updated", "duplicate", "failed")
OPERATIONS = ("fetch_orders", "push_status", "push_sale", "token")
REQUEST_OUTCOMES = ("success", "http_4xx", "http_429", "http_5xx", "timeout", "connect_error", "refused")
INBOUND_OUTCOMES = ("accepted", "duplicate", "updated", "cancelled", "unauthorized", "rejected", "inactive",
                    "unknown_order")
PUSH_OUTCOMES = ("delivered", "retrying", "gave_up")
UNKNOWN = "unknown"  # the provider of an unknown or deleted integration

# The operation a provider call belongs to: set around each client operation (ProviderClient) and
# the OAuth token request, read by the transport for every attempt. "other" is never expected.
OPERATION: ContextVar[str] = ContextVar("provider_operation", default="other")


@contextmanager
def operation(name: str) -> Iterator[None]:
    token = OPERATION.set(name)
    try:
        yield
    finally:
        OPERATION.reset(token)


def request_outcome(status: int) -> str:
    """The outcome of an attempt that got an HTTP answer (redirects are not followed: a 3xx is an error)."""
    if status < 300:
        return "success"
    if status == 429:
        return "http_429"
    return "http_5xx" if status >= 500 else "http_4xx"


def _start_at_zero() -> None:
    for provider, kind in PROVIDER_TYPES.items():
        for outcome in SYNC_OUTCOMES:
            SYNC_RUNS.labels(provider.value, outcome)
        for outcome in PUSH_OUTCOMES:
            PLATFORM_PUSHES.labels(provider.value, "status" if kind is IntegrationType.DELIVERY else "sale", outcome)
        if kind is IntegrationType.DELIVERY:
            for result in SYNC_RESULTS:
                SYNC_ORDERS.labels(provider.value, result)
            for outcome in INBOUND_OUTCOMES:
                INBOUND.labels(provider.value, outcome)
    INBOUND.labels(UNKNOWN, "unauthorized")


_start_at_zero()
