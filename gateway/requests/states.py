"""A request's states: derived from its deliveries, and the moves between them (pure
logic, no I/O).

A request's state follows its deliveries (``request_state``) except for the
approver's decision (``decide``). The table is what the code does today: intake
(gateway/requests/services.py), the gateway's own controls
(gateway/controls/system_requests.py), the decision, and ``refresh_requests``
(gateway/deliveries/services.py), which recomputes a request whenever one of its
deliveries moves; the README's "Request states" table is rendered from it.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Iterable

from gateway.deliveries.states import FINAL, DeliveryState
from gateway.transitions import NEW, Machine


class RequestState(StrEnum):
    ACCEPTED = "accepted"
    AWAITING_APPROVAL = "awaiting_approval"
    IN_PROGRESS = "in_progress"
    COMPLETED = "completed"
    PARTIALLY_COMPLETED = "partially_completed"
    FAILED = "failed"
    REJECTED = "rejected"


def request_state(delivery_states: Iterable[str]) -> RequestState:
    states = list(delivery_states)
    if not states:
        return RequestState.FAILED
    if any(s == DeliveryState.HELD for s in states):
        return RequestState.AWAITING_APPROVAL
    if all(s == DeliveryState.QUEUED for s in states):
        return RequestState.ACCEPTED
    if not all(s in FINAL for s in states):
        return RequestState.IN_PROGRESS
    answered = sum(1 for s in states if s == DeliveryState.ANSWERED)
    if answered == len(states):
        return RequestState.COMPLETED
    return RequestState.PARTIALLY_COMPLETED if answered else RequestState.FAILED


R = RequestState  # short, for the table below
_UNDER_WAY = (R.ACCEPTED, R.IN_PROGRESS)
_SETTLED = (R.COMPLETED, R.PARTIALLY_COMPLETED, R.FAILED)
SETTLED = (*_SETTLED, R.REJECTED)  # a request that will not move again (what a webhook tells)
_FOLLOWS = {
    R.ACCEPTED: "every delivery queued again (a retry scheduled, a lost batch file resent)",
    R.IN_PROGRESS: "a delivery on its way or settled, another not yet",
    R.COMPLETED: "every delivery answered",
    R.PARTIALLY_COMPLETED: "every delivery settled, some answered",
    R.FAILED: "every delivery settled, none answered",
}

REQUEST = Machine("request", RequestState, {
    (NEW, R.AWAITING_APPROVAL): "a control accepted, waiting for an approver (intake, `write_system_request`)",
    (NEW, R.ACCEPTED): "an inquiry accepted, or a control the gateway made already approved",
    (NEW, R.IN_PROGRESS): "an inquiry some of whose agencies answered recently (reuse window)",
    (NEW, R.COMPLETED): "an inquiry every one of whose agencies answered recently (reuse window)",
    (R.AWAITING_APPROVAL, R.ACCEPTED): "approved: its deliveries leave now (`decide`)",
    (R.AWAITING_APPROVAL, R.REJECTED): "rejected: nothing is sent (`decide`)",
    # refresh_requests: while any delivery is on its way the request follows them, both ways.
    **{(s, t): f"{why} (`refresh_requests`)" for s in _UNDER_WAY for t, why in _FOLLOWS.items()},
    # Settled deliveries never move again (a late result leaves one expired): nor does the request.
    **{(s, s): "recomputed after a late result: settled deliveries never move (`refresh_requests`)" for s in _SETTLED},
})


def move_request(current: str | None, target: str) -> RequestState:
    """``target``, if a request in ``current`` (None: a new row) may move there;
    raises IllegalTransition otherwise."""
    return REQUEST.move(current, target)


_API_STATES: dict[str, str] = {
    DeliveryState.SENDING: "sent",  # a worker holds the lease: to a caller it is on its way
    DeliveryState.AWAITING: "sent",  # in a batch file on the agency's server, its result not back yet
    DeliveryState.HELD: "queued",  # a control waiting for approval: it leaves once approved
}


def api_delivery_state(state: str) -> str:
    """The internal state as DESIGN.md's API names it."""
    return _API_STATES.get(state, str(state))
