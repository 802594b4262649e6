"""gateway.requests.states: a request's state from its deliveries' states."""

from __future__ import annotations

import pytest
from hypothesis import given, settings, strategies as st

from gateway.requests.states import api_delivery_state, request_state
from schemas.vocabulary import API_DELIVERY_STATES, DELIVERY_STATES, FINAL_DELIVERY_STATES, REQUEST_STATES


@pytest.mark.parametrize(
    ("states", "expected"),
    [
        ([], "failed"),
        (["queued"], "accepted"),
        (["queued", "queued", "queued"], "accepted"),
        (["queued", "sending"], "in_progress"),
        (["sending"], "in_progress"),
        (["sent"], "in_progress"),
        (["queued", "answered"], "in_progress"),
        (["sent", "failed"], "in_progress"),
        (["answered", "answered", "sending"], "in_progress"),
        (["answered"], "completed"),
        (["answered", "answered"], "completed"),
        (["answered", "failed"], "partially_completed"),
        (["answered", "expired"], "partially_completed"),
        (["rejected", "answered"], "partially_completed"),
        (["answered", "failed", "expired", "rejected"], "partially_completed"),
        (["failed"], "failed"),
        (["expired"], "failed"),
        (["rejected"], "failed"),
        (["failed", "expired", "rejected"], "failed"),
    ],
)
def test_request_state(states: list[str], expected: str) -> None:
    assert request_state(states) == expected


def test_accepts_any_iterable() -> None:
    assert request_state(iter(["answered", "failed"])) == "partially_completed"
    assert request_state(s for s in ["queued"]) == "accepted"


def _reference(states: list[str]) -> str:
    if not states:
        return "failed"
    if "held" in states:
        return "awaiting_approval"
    if set(states) == {"queued"}:
        return "accepted"
    if any(s not in FINAL_DELIVERY_STATES for s in states):
        return "in_progress"
    answered = states.count("answered")
    if answered == len(states):
        return "completed"
    return "partially_completed" if answered else "failed"


@settings(deadline=None)
@given(st.lists(st.sampled_from(DELIVERY_STATES), max_size=8))
def test_every_combination_matches_the_rule(states: list[str]) -> None:
    result = request_state(states)
    assert result == _reference(states)
    assert result in REQUEST_STATES


@settings(deadline=None)
@given(st.lists(st.sampled_from(DELIVERY_STATES), min_size=1, max_size=6), st.randoms())
def test_order_does_not_matter(states: list[str], rnd) -> None:
    shuffled = list(states)
    rnd.shuffle(shuffled)
    assert request_state(shuffled) == request_state(states)


def test_api_delivery_state_shows_design_names_only() -> None:
    assert api_delivery_state("sending") == "sent"
    assert api_delivery_state("awaiting") == "sent"
    assert api_delivery_state("held") == "queued"
    for state in API_DELIVERY_STATES:
        assert api_delivery_state(state) == state
    assert {api_delivery_state(s) for s in DELIVERY_STATES} == set(API_DELIVERY_STATES)


def test_a_held_control_keeps_the_request_awaiting_approval() -> None:
    assert request_state(["held", "held"]) == "awaiting_approval"
