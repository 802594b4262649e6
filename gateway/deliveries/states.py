"""A delivery's states and the moves between them (pure logic, no I/O).

The table is what the outbox does today, site by site (gateway/deliveries/services.py,
batches.py, gateway/requests/services.py and reuse.py, gateway/agency/services.py,
gateway/controls/system_requests.py); the README's "Delivery states" table is
rendered from it. The API shows ``sending`` and ``awaiting`` as ``sent`` and
``held`` as ``queued`` (gateway/requests/states.py, ``api_delivery_state``).
"""

from __future__ import annotations

from enum import StrEnum

from gateway.transitions import NEW, Machine


class DeliveryState(StrEnum):
    HELD = "held"  # a control waiting for approval: it leaves once approved
    QUEUED = "queued"  # due at next_attempt_at
    SENDING = "sending"  # a worker holds the lease
    AWAITING = "awaiting"  # in a batch file on the agency's server, or stored for a pull agency
    ANSWERED = "answered"
    FAILED = "failed"
    EXPIRED = "expired"
    REJECTED = "rejected"


D = DeliveryState  # short, for the table below
FINAL = frozenset({D.ANSWERED, D.FAILED, D.EXPIRED, D.REJECTED})
ON_ITS_WAY = (D.QUEUED, D.SENDING, D.AWAITING)  # unsettled, and not waiting for approval

# What makes each move: a bad result recorded (record_failure) may come from the agency
# while the delivery is queued for a retry, sending or awaiting, so its four outcomes
# leave all three.
_FAILURE = {
    D.QUEUED: "a retryable failure with attempts and time left: a retry scheduled (`record_failure`)",
    D.FAILED: "a failure not to retry, or retries used up before the deadline (`record_failure`)",
    D.REJECTED: "the agency refused it (`record_failure`)",
    D.EXPIRED: "retries ran past the deadline (`record_failure`), or the deadline passed (`expire_overdue`)",
}

DELIVERY = Machine("delivery", DeliveryState, {
    (NEW, D.HELD): "a control accepted: it waits for an approver (intake, `write_system_request`)",
    (NEW, D.QUEUED): "an inquiry accepted, or a control the gateway made already approved",
    (NEW, D.ANSWERED): "served from another case's recent answer (reuse window)",
    (D.HELD, D.QUEUED): "approved: it leaves now, its deadline counted from now (`decide`)",
    (D.HELD, D.REJECTED): "the approver rejected the control (`decide`)",
    (D.QUEUED, D.SENDING): "claimed by a worker when due (`claim_due`)",
    (D.QUEUED, D.ANSWERED): "a result for the request as sent earlier, while a retry waits (`record_answers`)",
    **{(D.QUEUED, t): why for t, why in _FAILURE.items()},
    (D.SENDING, D.SENDING): "its worker's lease lapsed: claimed again (`claim_due`)",
    (D.SENDING, D.QUEUED): "handed back by the agency's shared budget, the attempt not counted (`trim_to_budgets`); "
                           "or a retry scheduled (`record_failure`)",
    (D.SENDING, D.AWAITING): "its batch file is on the agency's server (`mark_sent`), or stored for a pull agency "
                             "(`store_for_pull`)",
    (D.SENDING, D.ANSWERED): "the agency's answer recorded (`record_answers`)",
    **{(D.SENDING, t): why for t, why in _FAILURE.items() if t != D.QUEUED},
    (D.AWAITING, D.SENDING): "no result within the wait: sent again, the same message id (`claim_due`)",
    (D.AWAITING, D.QUEUED): "the agency lost its batch file (`resend_lost`), or a retry scheduled (`record_failure`)",
    (D.AWAITING, D.ANSWERED): "a result line, or a pull agency's result (`record_answers`)",
    (D.AWAITING, D.REJECTED): "a pull agency sent it back unanswered (`send_back`), or refused it (`record_failure`)",
    **{(D.AWAITING, t): why for t, why in _FAILURE.items() if t not in (D.QUEUED, D.REJECTED)},
    (D.EXPIRED, D.EXPIRED): "a late first result: kept and shown, the delivery stays expired (`record_answers`)",
})


def move_delivery(current: str | None, target: str) -> DeliveryState:
    """``target``, if a delivery in ``current`` (None: a new row) may move there;
    raises IllegalTransition otherwise."""
    return DELIVERY.move(current, target)
