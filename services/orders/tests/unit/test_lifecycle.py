"""The order lifecycle's transition table: every allowed and every refused move, enumerated from the
table and from the states, actions and sources themselves (not a copy of the table), plus the
properties the issue states independently of the table."""
from __future__ import annotations

from itertools import product

import pytest

from orders.domain.lifecycle import ACTIONS, RANK, TABLE, TERMINAL, Source, Status, allowed_actions, decide

ALLOWED = {(move.source_status, move.action, source): move.target for move in TABLE for source in move.sources}
EVERY = list(product(Status, ACTIONS, Source))
REFUSED = [case for case in EVERY if case not in ALLOWED]


def _id(case) -> str:
    status, action, source = case
    return f"{status.value}-{action}-by-{source.value}"


def test_the_table_covers_every_state_and_source():
    assert len(EVERY) == len(Status) * len(ACTIONS) * len(Source)
    assert ALLOWED and REFUSED and len(ALLOWED) + len(REFUSED) == len(EVERY)
    assert {move.source_status for move in TABLE} | {move.target for move in TABLE} == set(Status)


@pytest.mark.parametrize("case", sorted(ALLOWED), ids=_id)
def test_every_allowed_move_applies(case):
    status, action, source = case
    decision = decide(status, action, source)
    assert (decision.outcome, decision.current, decision.target) == ("apply", status, ALLOWED[case])
    assert action in decision.allowed


@pytest.mark.parametrize("case", REFUSED, ids=_id)
def test_every_other_move_is_refused_or_a_repeat(case):
    status, action, source = case
    decision = decide(status, action, source)
    already = any(move.action == action and move.target == status and source in move.sources for move in TABLE)
    if already:  # the move took effect before: answered with the order as it is, no second effect
        assert (decision.outcome, decision.target) == ("repeat", status)
    else:
        assert (decision.outcome, decision.target) == ("refuse", None)
    assert decision.allowed == allowed_actions(status, source)
    assert action not in decision.allowed


@pytest.mark.parametrize("move", TABLE, ids=lambda m: f"{m.source_status.value}-{m.action}-{m.target.value}")
def test_moves_only_go_forward_and_asking_again_is_a_repeat(move):
    assert RANK[move.target] > RANK[move.source_status]
    for source in move.sources:
        if (move.target, move.action, source) not in ALLOWED:
            assert decide(move.target, move.action, source).outcome == "repeat"


def test_the_lifecycle_the_issue_names():
    s, by = Status, Source
    named = [
        (s.RECEIVED, "accept", by.MERCHANT, s.ACCEPTED), (s.RECEIVED, "accept", by.AUTO_ACCEPT, s.ACCEPTED),
        (s.ACCEPTED, "prepare", by.POS, s.PREPARING), (s.PREPARING, "ready", by.POS, s.READY),
        (s.READY, "pick_up", by.PLATFORM, s.PICKED_UP), (s.PICKED_UP, "complete", by.POS, s.COMPLETED),
        (s.RECEIVED, "reject", by.MERCHANT, s.REJECTED), (s.RECEIVED, "expire", by.TIMER, s.EXPIRED),
        (s.RECEIVED, "cancel", by.PLATFORM, s.CANCELLED), (s.ACCEPTED, "cancel", by.PLATFORM, s.CANCEL_REQUESTED),
        (s.CANCEL_REQUESTED, "confirm_cancel", by.POS, s.CANCELLED),
    ]
    for status, action, source, target in named:
        assert decide(status, action, source).target == target, (status, action, source)
    assert TERMINAL == {s.COMPLETED, s.REJECTED, s.EXPIRED, s.CANCELLED, s.FAILED}
    for status in (s.ACCEPTED, s.EXPIRED, s.REJECTED, s.CANCELLED):  # reject only what is still received
        assert decide(status, "reject", by.MERCHANT).outcome in ("refuse", "repeat")
    for status in (s.EXPIRED, s.REJECTED, s.CANCELLED):  # accepting a dead order is a 409
        assert decide(status, "accept", by.MERCHANT).outcome == "refuse"
    assert decide(s.RECEIVED, "expire", by.MERCHANT).outcome == "refuse"  # only the timer expires


def test_every_state_is_reachable_from_received():
    reached, frontier = {Status.RECEIVED}, [Status.RECEIVED]
    while frontier:
        status = frontier.pop()
        for move in TABLE:
            if move.source_status == status and move.target not in reached:
                reached.add(move.target)
                frontier.append(move.target)
    assert reached == set(Status)


def test_terminal_states_allow_nothing_and_unknown_actions_are_a_bug():
    for status, source in product(TERMINAL, Source):
        assert allowed_actions(status, source) == ()
    with pytest.raises(ValueError):
        decide(Status.RECEIVED, "teleport", Source.MERCHANT)
