"""Webhooks: a court's callback URL, and the notifications waiting to reach it.

The notifications are an outbox in the database: each is sent, retried with
backoff and finally given up on from its row, never from a sleeping thread, so a
restart or another process carries on where one stopped.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, CheckConstraint, DateTime, ForeignKey, Index, Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from gateway.db import Base
from gateway.transitions import state_check
from gateway.webhooks.states import NotificationState
from gateway.timeutil import new_id, utc_now


class WebhookSubscription(Base):
    __tablename__ = "webhook_subscriptions"

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    court_code: Mapped[str] = mapped_column(String(32), index=True)
    url: Mapped[str] = mapped_column(String(500))
    events: Mapped[list[str]] = mapped_column(JSON)
    # The HMAC key notifications are signed with: made by the gateway, shown once when
    # registered. Kept as is because every send needs it (like an agency's password).
    secret: Mapped[str] = mapped_column(String(128))
    created_by: Mapped[str] = mapped_column(String(128))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utc_now)
    removed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # What has been looked through for new events (with an overlap: see services.scan).
    scanned_until: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class WebhookNotification(Base):
    __tablename__ = "webhook_notifications"
    __table_args__ = (
        # One notification per event and subscription, however many processes look.
        UniqueConstraint("subscription_id", "event_key", name="uq_webhook_notifications_event"),
        Index("ix_webhook_notifications_due", "state", "next_attempt_at"),
        # The states of gateway/webhooks/states.py (migration 0017_state_checks).
        CheckConstraint(state_check(NotificationState), name="state"),
    )

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    subscription_id: Mapped[str] = mapped_column(ForeignKey("webhook_subscriptions.id"), index=True)
    event: Mapped[str] = mapped_column(String(32))  # request.finished, asset.found, control.lapsing, case.resumable
    event_key: Mapped[str] = mapped_column(String(128))
    payload: Mapped[dict[str, Any]] = mapped_column(JSON)
    state: Mapped[str] = mapped_column(String(16))  # pending, delivered, failed (gave up)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    lease_until: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    last_status: Mapped[int | None] = mapped_column(Integer)
    last_error: Mapped[str | None] = mapped_column(String(500))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utc_now)
    delivered_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
