from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from sqlalchemy import JSON, Boolean, CheckConstraint, DateTime, Float, ForeignKey, Index, Integer, LargeBinary, Numeric, String, Text, false, text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from gateway.db import Base
from gateway.deliveries.states import DeliveryState
from gateway.transitions import state_check
from gateway.timeutil import new_id, utc_now

if TYPE_CHECKING:  # the mapper resolves it by name; imported for the type checker only
    from gateway.requests.models import Request


class Delivery(Base):
    """One request as sent to one agency: the outbox row. Its id is the message id
    the agency sees on every attempt."""

    __tablename__ = "deliveries"
    __table_args__ = (
        Index("ix_deliveries_due", "state", "next_attempt_at"),  # the expiry sweep, any agency
        # A claim on PostgreSQL: one agency's due deliveries in due order (migration 0022_claim_index
        # says why not on SQLite).
        Index("ix_deliveries_agency_due", "agency_id", "state", "next_attempt_at").ddl_if(dialect="postgresql"),
        # Also every look by agency (no index on agency_id alone: migration 0020_intake_indexes).
        Index("ix_deliveries_agency_answered", "agency_id", "answered_at"),
        # An inquiry's look for recent answers about its subject (gateway/requests/reuse.py): of
        # answered deliveries only, so a new one (not answered) costs the intake no index page.
        Index("ix_deliveries_subject_answered", "subject_id", "agency_id", "answered_at",
              sqlite_where=text("answered_at IS NOT NULL"), postgresql_where=text("answered_at IS NOT NULL")),
        # Looked up by name only (gateway/deliveries/progress.py); a delivery in no batch file is not in it.
        Index("ix_deliveries_batch_file", "batch_file",
              sqlite_where=text("batch_file IS NOT NULL"), postgresql_where=text("batch_file IS NOT NULL")),
        # The states of gateway/deliveries/states.py (migration 0017_state_checks).
        CheckConstraint(state_check(DeliveryState), name="state"),
    )

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    request_id: Mapped[str] = mapped_column(ForeignKey("requests.id"), index=True)
    subject_id: Mapped[str] = mapped_column(ForeignKey("subjects.id"))  # its request's (migration 0019)
    agency_id: Mapped[str] = mapped_column(String(64))
    transport: Mapped[str] = mapped_column(String(8))
    categories: Mapped[list[str]] = mapped_column(JSON)
    state: Mapped[str] = mapped_column(String(16))
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    lease_until: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    deadline: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    last_error: Mapped[str | None] = mapped_column(Text)
    request_sha256: Mapped[str | None] = mapped_column(String(64))
    answered_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # The request exactly as sent (the same bytes on every attempt once made), so an
    # answer arriving later, in any process, is checked against what was asked.
    request_body: Mapped[bytes | None] = mapped_column(LargeBinary)
    request_operation: Mapped[str | None] = mapped_column(String(64))
    request_media_type: Mapped[str | None] = mapped_column(String(64))
    sent_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    batch_file: Mapped[str | None] = mapped_column(String(128))  # the batch file that carried it (SFTP)
    # A control's asset lines, as the agency names them (identifier, amount, until,
    # original_reference), resolved from the officer's targets when it was accepted.
    lines: Mapped[list[dict[str, Any]] | None] = mapped_column(JSON)
    lease_owner: Mapped[str | None] = mapped_column(String(64))  # the worker (host:pid) that last claimed it
    fetched_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))  # a pull agency last listed it (the refetch rule)
    # Served from another case's recent answer (reuse window): that delivery, and the answer's age then.
    reused_from: Mapped[str | None] = mapped_column(String(36))
    reused_age_seconds: Mapped[int | None] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utc_now)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utc_now, onupdate=utc_now)

    request: Mapped["Request"] = relationship(back_populates="deliveries")
    result: Mapped[DeliveryResult | None] = relationship(back_populates="delivery", lazy="selectin")


class DeliveryResult(Base):
    """An agency's validated answer. One per delivery: a duplicate answer is discarded."""

    __tablename__ = "delivery_results"

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    delivery_id: Mapped[str] = mapped_column(ForeignKey("deliveries.id"), unique=True)
    received_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utc_now)
    agency_answered_at: Mapped[str] = mapped_column(String(40))
    request_sha256: Mapped[str] = mapped_column(String(64))
    answer_sha256: Mapped[str] = mapped_column(String(64))
    asset_count: Mapped[int] = mapped_column(Integer)
    # What the agency did to each asset, for control actions (ControlOutcomeSchema dicts).
    controls: Mapped[list[dict[str, Any]] | None] = mapped_column(JSON)
    # Arrived after the delivery expired: kept and shown, never counted as answered in time.
    late: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())

    delivery: Mapped[Delivery] = relationship(back_populates="result")


class Asset(Base):
    """One asset an agency reported for a subject."""

    __tablename__ = "assets"

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    subject_id: Mapped[str] = mapped_column(ForeignKey("subjects.id"), index=True)
    delivery_id: Mapped[str] = mapped_column(ForeignKey("deliveries.id"), index=True)
    agency_id: Mapped[str] = mapped_column(String(64))
    category: Mapped[str] = mapped_column(String(32))
    identifier: Mapped[str] = mapped_column(String(128))
    description: Mapped[str] = mapped_column(String(500))
    balance: Mapped[Decimal | None] = mapped_column(Numeric(18, 2))
    value: Mapped[Decimal | None] = mapped_column(Numeric(18, 2))
    encumbrances: Mapped[list[str]] = mapped_column(JSON)
    details: Mapped[dict[str, Any]] = mapped_column(JSON)
    found_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utc_now)


class QuarantinedMessage(Base):
    """An incoming message that failed its schema or was not bound to its request:
    kept whole, with the reason, never applied."""

    __tablename__ = "quarantined_messages"

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    delivery_id: Mapped[str] = mapped_column(ForeignKey("deliveries.id"), index=True)
    received_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utc_now)
    reason: Mapped[str] = mapped_column(Text)
    body_sha256: Mapped[str] = mapped_column(String(64))
    body: Mapped[bytes] = mapped_column(LargeBinary)


class ChannelLease(Base):
    """Which process collects a batch agency's result files, until when (renewed while it works)."""

    __tablename__ = "channel_leases"

    name: Mapped[str] = mapped_column(String(96), primary_key=True)
    holder: Mapped[str] = mapped_column(String(128))
    lease_until: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class AgencyBudget(Base):
    """An agency's rate budget shared by every process (a token bucket): what its
    ``rate_limit_per_second`` still allows, as of ``refilled_at``. Locked while a claim
    is trimmed to it, so processes together never exceed the agency's limits."""

    __tablename__ = "agency_budgets"

    agency_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    tokens: Mapped[float] = mapped_column(Float)
    refilled_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
