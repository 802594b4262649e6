"""A request's state follows its deliveries (pure logic, no I/O)."""

from __future__ import annotations

from typing import Iterable

from schemas.vocabulary import FINAL_DELIVERY_STATES


def request_state(delivery_states: Iterable[str]) -> str:
    states = list(delivery_states)
    if not states:
        return "failed"
    if all(s == "queued" for s in states):
        return "accepted"
    if not all(s in FINAL_DELIVERY_STATES for s in states):
        return "in_progress"
    answered = sum(1 for s in states if s == "answered")
    if answered == len(states):
        return "completed"
    return "partially_completed" if answered else "failed"


def api_delivery_state(state: str) -> str:
    """'sending' means a worker holds the lease: to a caller it is on its way."""
    return "sent" if state == "sending" else state
