"""A webhook notification's states and the moves between them (pure logic, no I/O).

The table is what gateway/webhooks/services.py does today; the README's "Webhook
notification states" table is rendered from it. A retry leaves a notification
``pending`` (its next_attempt_at moves): no move of state.
"""

from __future__ import annotations

from enum import StrEnum

from gateway.transitions import NEW, Machine


class NotificationState(StrEnum):
    PENDING = "pending"
    DELIVERED = "delivered"
    FAILED = "failed"  # gave up, or its webhook was removed


N = NotificationState  # short, for the table below

NOTIFICATION = Machine("webhook notification", NotificationState, {
    (NEW, N.PENDING): "an event not notified before (`enqueue`)",
    (N.PENDING, N.DELIVERED): "the court's endpoint answered 2xx (`record_outcome`)",
    (N.PENDING, N.FAILED): "no retry left (`record_outcome`), or its webhook removed (`remove`)",
    # remove() ends every pending notification, the one being sent too: its outcome still lands.
    (N.FAILED, N.DELIVERED): "in flight when its webhook was removed, and delivered (`record_outcome`)",
    (N.FAILED, N.FAILED): "in flight when its webhook was removed, and no retry left (`record_outcome`)",
})


def move_notification(current: str | None, target: str) -> NotificationState:
    """``target``, if a notification in ``current`` (None: a new row) may move there;
    raises IllegalTransition otherwise."""
    return NOTIFICATION.move(current, target)
