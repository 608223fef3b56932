"""The external-order lifecycle as one transition table: every command, event and timer that
changes an order's status asks ``decide`` and nothing else. Pure Python, no I/O.

A move is (action, from, to, sources): ``action`` is what is asked (``accept``, ``cancel``...),
``sources`` who may ask it. Moves only go forward (``RANK``); the terminal states have none.
Asking for a move that already took effect (the order is in that action's target state) is a
repeat: answered with the current order, no second effect.
"""
from __future__ import annotations

from dataclasses import dataclass

from posint_common.contracts.orders import ChangeSource, OrderStatus

# The states and sources are published (posint_common.contracts.orders): the API filters on them.
Status, Source = OrderStatus, ChangeSource
S, By = Status, Source


@dataclass(frozen=True)
class Move:
    action: str
    source_status: Status
    target: Status
    sources: frozenset[Source]


def _moves(action: str, sources: set[Source], target: Status, *froms: Status) -> list[Move]:
    return [Move(action, origin, target, frozenset(sources)) for origin in froms]


AFTER_ACCEPT = (S.ACCEPTED, S.PREPARING, S.READY)

TABLE: tuple[Move, ...] = tuple(
    _moves("accept", {By.MERCHANT, By.AUTO_ACCEPT}, S.ACCEPTED, S.RECEIVED)
    + _moves("reject", {By.MERCHANT}, S.REJECTED, S.RECEIVED)
    + _moves("expire", {By.TIMER}, S.EXPIRED, S.RECEIVED)
    # Before acceptance either side may cancel outright; after it a platform's cancellation waits
    # for the POS to confirm, while a restaurant cancelling (no POS reporting) is final at once.
    + _moves("cancel", {By.PLATFORM, By.MERCHANT}, S.CANCELLED, S.RECEIVED)
    + _moves("cancel", {By.PLATFORM}, S.CANCEL_REQUESTED, *AFTER_ACCEPT)
    + _moves("cancel", {By.MERCHANT, By.POS}, S.CANCELLED, *AFTER_ACCEPT)
    + _moves("confirm_cancel", {By.POS, By.MERCHANT}, S.CANCELLED, S.CANCEL_REQUESTED)
    + _moves("prepare", {By.POS, By.MERCHANT}, S.PREPARING, S.ACCEPTED)
    + _moves("ready", {By.POS, By.MERCHANT}, S.READY, S.ACCEPTED, S.PREPARING)
    + _moves("pick_up", {By.PLATFORM, By.POS, By.MERCHANT}, S.PICKED_UP, S.READY)
    + _moves("complete", {By.POS, By.MERCHANT, By.PLATFORM}, S.COMPLETED, S.READY, S.PICKED_UP)
    + _moves("fail", {By.POS, By.PLATFORM}, S.FAILED, S.RECEIVED, S.ACCEPTED)
)

ACTIONS: tuple[str, ...] = tuple(dict.fromkeys(move.action for move in TABLE))

# Forward order: a move never goes to a lower rank. The side states share the rank of where they end.
RANK = {S.RECEIVED: 0, S.ACCEPTED: 1, S.PREPARING: 2, S.READY: 3, S.PICKED_UP: 4, S.CANCEL_REQUESTED: 4,
        S.COMPLETED: 5, S.REJECTED: 5, S.EXPIRED: 5, S.CANCELLED: 5, S.FAILED: 5}

TERMINAL = frozenset(status for status in Status if not any(move.source_status == status for move in TABLE))


@dataclass(frozen=True)
class Decision:
    """``apply``: move to ``target``; ``repeat``: it already took effect; ``refuse``: not from
    here (``allowed``: what the same source may still do)."""

    outcome: str
    current: Status
    target: Status | None
    allowed: tuple[str, ...]


def allowed_actions(current: Status, source: Source) -> tuple[str, ...]:
    return tuple(dict.fromkeys(m.action for m in TABLE if m.source_status == current and source in m.sources))


def decide(current: Status, action: str, source: Source) -> Decision:
    if action not in ACTIONS:
        raise ValueError(f"unknown action {action!r}")
    allowed = allowed_actions(current, source)
    for move in TABLE:
        if move.action == action and move.source_status == current and source in move.sources:
            return Decision("apply", current, move.target, allowed)
    if any(m.action == action and m.target == current and source in m.sources for m in TABLE):
        return Decision("repeat", current, current, allowed)
    return Decision("refuse", current, None, allowed)
