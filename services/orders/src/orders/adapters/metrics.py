"""The orders service's Prometheus metrics: status changes, time to accept, POS injections by
outcome, and the received orders still waiting for a restaurant (all, and those close to their
``accept_by``). Labels are bounded: a delivery provider (``other`` for anything else), a status, a
change source, an outcome; never an id.

A handler's counts are applied only when it returned without an error (``deferred``): the consumer
retries a failed handler in a new transaction, and only the run that commits is counted (a commit
failing after the handler returned is the one case counted without its effect). The timer wraps its
transactions the same way. The series the alerts use with ``increase()`` start at 0 at import, so
the first failure shows as an increase."""
from __future__ import annotations

import functools
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import datetime
from typing import Awaitable, Callable, Iterable, Iterator

from prometheus_client import Counter, Gauge, Histogram

from posint_common.contracts.providers import PROVIDER_TYPES, IntegrationType
from posint_common.envelope import utcnow

from orders.domain.lifecycle import TABLE, Source, Status

TRANSITIONS = Counter("posint_orders_transitions_total",
                      "Order status changes by provider, new status and who made them (arrivals: to=received)",
                      ["provider", "to", "source"])
TIME_TO_ACCEPT = Histogram("posint_orders_time_to_accept_seconds", "From an order's arrival to its acceptance",
                           ["source"], buckets=(1, 5, 15, 30, 60, 120, 180, 240, 300, 420, 480, 600, 690, 900))
INJECTIONS = Counter("posint_orders_injections_total",
                     "POS injections: injected / failed when the POS's answer is applied; pending when an accept "
                     "(or retry-injection) was answered before the POS answered", ["provider", "outcome"])
UNACCEPTED = Gauge("posint_orders_unaccepted", "Orders received and not accepted, rejected, expired or cancelled yet",
                   ["provider"])
NEAR_DEADLINE = Gauge("posint_orders_unaccepted_near_deadline",
                      "Received orders whose accept_by is less than ORDERS_NEAR_DEADLINE_S away (or passed, "
                      "not yet expired by the timer)", ["provider"])

PROVIDERS = tuple(p.value for p, kind in PROVIDER_TYPES.items() if kind is IntegrationType.DELIVERY)
OTHER = "other"
INJECTION_OUTCOMES = ("injected", "failed", "pending")

_PENDING: ContextVar[list[Callable[[], None]] | None] = ContextVar("orders_metrics_pending", default=None)


def provider(name: str) -> str:
    return name if name in PROVIDERS else OTHER


def _count(action: Callable[[], None]) -> None:
    pending = _PENDING.get()
    if pending is None:
        action()
    else:
        pending.append(action)


@contextmanager
def after_success() -> Iterator[None]:
    """Counts made inside are applied when the block ends without an error, dropped otherwise."""
    pending: list[Callable[[], None]] = []
    token = _PENDING.set(pending)
    try:
        yield
    finally:
        _PENDING.reset(token)
    for action in pending:
        action()


def deferred(handler: Callable[..., Awaitable]) -> Callable[..., Awaitable]:
    """A consumer handler whose counts apply only when it returns (see the module's docstring)."""

    @functools.wraps(handler)
    async def counted(ctx, message):
        with after_success():
            return await handler(ctx, message)

    return counted


def transition(provider_name: str, to: Status, source: Source) -> None:
    _count(TRANSITIONS.labels(provider(provider_name), to.value, source.value).inc)


def accepted(source: Source, arrived_at: datetime) -> None:
    seconds = max(0.0, (utcnow() - arrived_at).total_seconds())
    _count(lambda: TIME_TO_ACCEPT.labels(source.value).observe(seconds))


def injection(provider_name: str, outcome: str) -> None:
    _count(INJECTIONS.labels(provider(provider_name), outcome).inc)


def set_unaccepted(rows: Iterable[tuple[str, int, int]]) -> None:
    """(provider, received, near the deadline) per provider; providers absent from ``rows`` have none."""
    counts = {name: (0, 0) for name in (*PROVIDERS, OTHER)}
    for name, received, near in rows:
        label = provider(name)
        total, close = counts[label]
        counts[label] = (total + received, close + near)
    for label, (received, near) in counts.items():
        UNACCEPTED.labels(label).set(received)
        NEAR_DEADLINE.labels(label).set(near)


def _start_at_zero() -> None:
    for name in PROVIDERS:
        for outcome in INJECTION_OUTCOMES:
            INJECTIONS.labels(name, outcome)
        TRANSITIONS.labels(name, Status.RECEIVED.value, Source.PLATFORM.value)
        for move in TABLE:
            for source in move.sources:
                TRANSITIONS.labels(name, move.target.value, source.value)
    set_unaccepted(())


_start_at_zero()
