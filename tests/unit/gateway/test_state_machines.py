"""The state machines (deliveries, requests, webhook notifications, batch lines):
every move of each table accepted, every other refused, the request table covering
whatever its deliveries' moves can make of it, the vocabulary and the README saying
the same as the code."""

from __future__ import annotations

import itertools
import re
from pathlib import Path

import pytest
from hypothesis import given, settings, strategies as st

from gateway.batches.states import BATCH_LINE, EXPANDABLE, LineState
from gateway.deliveries.states import DELIVERY, FINAL, ON_ITS_WAY, DeliveryState, move_delivery
from gateway.errors import Conflict, IllegalTransition
from gateway.requests.states import REQUEST, SETTLED, RequestState, move_request, request_state
from gateway.transitions import NEW, state_check
from gateway.webhooks.states import NOTIFICATION, NotificationState, move_notification
from schemas.vocabulary import DELIVERY_STATES, FINAL_DELIVERY_STATES, REQUEST_STATES

README = Path(__file__).resolve().parents[3] / "README.md"
MACHINES = {"delivery": (DELIVERY, move_delivery), "request": (REQUEST, move_request),
            "webhook notification": (NOTIFICATION, move_notification), "batch line": (BATCH_LINE, BATCH_LINE.move)}


def _every_pair(machine):
    return list(itertools.product((NEW, *machine.states), machine.states))


@pytest.mark.parametrize(("name", "source", "target"), [
    (name, s, t) for name, (machine, _) in MACHINES.items() for s, t in machine.moves])
def test_every_move_of_the_table_is_accepted(name, source, target):
    _machine, move = MACHINES[name]
    moved = move(source, target)
    assert moved is target and isinstance(moved, type(target))
    assert move(None if source is None else str(source), str(target)) is target  # as read from a row: a plain str


@pytest.mark.parametrize(("name", "source", "target"), [
    (name, s, t) for name, (machine, _) in MACHINES.items() for s, t in _every_pair(machine)
    if (s, t) not in machine.moves])
def test_every_other_move_is_refused(name, source, target):
    _machine, move = MACHINES[name]
    with pytest.raises(IllegalTransition) as refused:
        move(source, target)
    error = refused.value
    assert isinstance(error, Conflict) and error.http_status == 409 and error.code == "illegal_transition"
    assert str(target) in error.message and name in error.message
    assert "state" in error.fields


def test_the_refusals_named_by_the_code_are_refused():
    """The moves the code relies on being impossible: a settled delivery never leaves
    its state but for a late result, a held one is never sent, an answered one never
    answered again, a rejected request never followed."""
    for state in FINAL - {DeliveryState.EXPIRED}:
        for target in DeliveryState:
            assert not DELIVERY.allows(state, target)
    assert DELIVERY.allows(DeliveryState.EXPIRED, DeliveryState.EXPIRED)
    assert not DELIVERY.allows(DeliveryState.HELD, DeliveryState.SENDING)
    assert not DELIVERY.allows(DeliveryState.HELD, DeliveryState.ANSWERED)
    assert not DELIVERY.allows(NEW, DeliveryState.SENDING)
    for target in RequestState:
        assert not REQUEST.allows(RequestState.REJECTED, target)
    for target in NotificationState:
        assert not NOTIFICATION.allows(NotificationState.DELIVERED, target)
    for target in LineState:
        assert not BATCH_LINE.allows(LineState.ACCEPTED, target) and not BATCH_LINE.allows(LineState.REFUSED, target)
    assert EXPANDABLE == (LineState.PENDING,)
    assert not REQUEST.allows(RequestState.COMPLETED, RequestState.IN_PROGRESS)
    assert not REQUEST.allows(RequestState.ACCEPTED, RequestState.AWAITING_APPROVAL)


def test_final_and_settled_are_the_states_the_tables_never_leave():
    """FINAL (deliveries) and SETTLED (requests: what webhooks, batches, repeat freezes and
    re-inquiries wait for) are exactly the states with no move out but to themselves."""
    for machine, named in ((DELIVERY, FINAL), (REQUEST, set(SETTLED))):
        for state in machine.states:
            leaves = {t for s, t in machine.moves if s == state and t != state}
            assert (not leaves) == (state in named), state


def test_a_word_that_is_no_state_is_refused():
    for bad in ("sent", "", "Queued", "done"):
        with pytest.raises(IllegalTransition, match="not a delivery state"):
            move_delivery(bad, DeliveryState.QUEUED)
        with pytest.raises(IllegalTransition, match="not a delivery state"):
            move_delivery(DeliveryState.QUEUED, bad)
        with pytest.raises(IllegalTransition, match="not a request state"):
            move_request(RequestState.ACCEPTED, bad)


def test_sources_of_a_set_based_move_come_from_the_table():
    assert set(DELIVERY.sources(DeliveryState.SENDING)) == {DeliveryState.QUEUED, DeliveryState.SENDING,
                                                            DeliveryState.AWAITING}
    assert DELIVERY.sources(DeliveryState.AWAITING, among=(DeliveryState.SENDING,)) == (DeliveryState.SENDING,)
    assert set(DELIVERY.sources(DeliveryState.EXPIRED)) == {*ON_ITS_WAY, DeliveryState.EXPIRED}
    with pytest.raises(IllegalTransition):  # a WHERE that would move a row the table refuses
        DELIVERY.sources(DeliveryState.AWAITING, among=(DeliveryState.SENDING, DeliveryState.HELD))
    for target in DeliveryState:
        assert all(DELIVERY.allows(s, target) for s in DELIVERY.sources(target))


def test_a_table_naming_another_machines_state_fails_at_once():
    from gateway.transitions import Machine

    with pytest.raises(TypeError, match="outside DeliveryState"):
        Machine("delivery", DeliveryState, {(DeliveryState.QUEUED, RequestState.ACCEPTED): "wrong"})


# --- the request table covers whatever the delivery moves make of a request --------------------------

_LIVE_MOVES = [(s, t) for s, t in DELIVERY.moves if s is not None and s != DeliveryState.HELD]


@st.composite
def _histories(draw):
    """A request's deliveries as accepted, then a run of legal delivery moves, one at a time."""
    control = draw(st.booleans())
    count = draw(st.integers(1, 5))
    if control:  # held, then approved (rejected: every delivery settled at once, never refreshed)
        start = [DeliveryState.HELD] * count
    else:
        start = draw(st.lists(st.sampled_from([t for s, t in DELIVERY.moves if s is None and t != DeliveryState.HELD]),
                              min_size=count, max_size=count))
    steps = draw(st.lists(st.tuples(st.integers(0, count - 1), st.integers(0, 50)), max_size=20))
    return control, start, steps


@settings(deadline=None, max_examples=300)
@given(_histories())
def test_every_request_state_its_deliveries_can_reach_is_a_legal_move(history):
    control, deliveries, steps = history
    state = move_request(NEW, RequestState.AWAITING_APPROVAL if control else request_state(deliveries))
    assert state == request_state(deliveries)
    if control:  # decide: every held delivery queued, the request accepted
        deliveries = [move_delivery(d, DeliveryState.QUEUED) for d in deliveries]
        state = move_request(state, RequestState.ACCEPTED)
        assert state == request_state(deliveries)
    for index, pick in steps:
        options = [t for s, t in _LIVE_MOVES if s == deliveries[index]]
        if not options:
            continue
        deliveries[index] = move_delivery(deliveries[index], options[pick % len(options)])
        state = move_request(state, request_state(deliveries))  # refresh_requests, checked as it checks


# --- one spelling everywhere ---------------------------------------------------------------------------


def test_the_vocabulary_spells_the_states_as_the_enums():
    assert DELIVERY_STATES == tuple(DeliveryState)
    assert REQUEST_STATES == tuple(RequestState)
    assert set(FINAL_DELIVERY_STATES) == FINAL


def test_the_check_constraint_names_every_state():
    assert state_check(DeliveryState) == (
        "state IN ('held', 'queued', 'sending', 'awaiting', 'answered', 'failed', 'expired', 'rejected')")
    assert set(re.findall(r"'([^']*)'", state_check(RequestState))) == set(RequestState)


@pytest.mark.parametrize("name", list(MACHINES))
def test_the_readme_table_is_the_codes(name):
    machine, _ = MACHINES[name]
    text = README.read_text(encoding="utf-8")
    found = re.search(rf"<!-- {name} moves: generated from [^>]+-->\n(.*?)\n<!-- end {name} moves -->", text, re.S)
    assert found, f"README.md has no generated table of {name} moves"
    assert found.group(1) == machine.markdown(), (
        f"README.md's {name} table differs from the code's; paste this between its markers:\n{machine.markdown()}")
