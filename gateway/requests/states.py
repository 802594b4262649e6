"""A request's state follows its deliveries (pure logic, no I/O)."""

from __future__ import annotations

from typing import Iterable

from schemas.vocabulary import FINAL_DELIVERY_STATES


def request_state(delivery_states: Iterable[str]) -> str:
    states = list(delivery_states)
    if not states:
        return "failed"
    if any(s == "held" for s in states):
        return "awaiting_approval"
    if all(s == "queued" for s in states):
        return "accepted"
    if not all(s in FINAL_DELIVERY_STATES for s in states):
        return "in_progress"
    answered = sum(1 for s in states if s == "answered")
    if answered == len(states):
        return "completed"
    return "partially_completed" if answered else "failed"


_API_STATES = {
    "sending": "sent",  # a worker holds the lease: to a caller it is on its way
    "awaiting": "sent",  # in a batch file on the agency's server, its result not back yet
    "held": "queued",  # a control waiting for approval: it leaves once approved
}


def api_delivery_state(state: str) -> str:
    """The internal state as DESIGN.md's API names it."""
    return _API_STATES.get(state, state)
