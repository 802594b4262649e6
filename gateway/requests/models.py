from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from sqlalchemy import JSON, CheckConstraint, DateTime, ForeignKey, Index, Integer, Numeric, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from gateway.db import Base
from gateway.requests.states import RequestState
from gateway.transitions import state_check
from gateway.timeutil import new_id, utc_now

if TYPE_CHECKING:  # the mapper resolves these by name; imported for the type checker only
    from gateway.cases.models import Case, Subject
    from gateway.deliveries.models import Delivery


class Request(Base):
    __tablename__ = "requests"
    # An Idempotency-Key is scoped to the officer who sent it.
    __table_args__ = (
        UniqueConstraint("officer_sub", "idempotency_key", name="uq_requests_idempotency"),
        # The per-officer and per-court limits count recent requests (gateway/requests/limits.py).
        Index("ix_requests_officer_created", "officer_sub", "created_at"),
        Index("ix_requests_court_created", "court_code", "created_at"),
        # The states of gateway/requests/states.py (migration 0017_state_checks).
        CheckConstraint(state_check(RequestState), name="state"),
    )

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    case_id: Mapped[str] = mapped_column(ForeignKey("cases.id"), index=True)
    subject_id: Mapped[str] = mapped_column(ForeignKey("subjects.id"), index=True)
    action: Mapped[str] = mapped_column(String(16))
    categories: Mapped[list[str]] = mapped_column(JSON)
    legal_basis_kind: Mapped[str | None] = mapped_column(String(32))
    legal_basis_number: Mapped[str | None] = mapped_column(String(64))
    amount: Mapped[Decimal | None] = mapped_column(Numeric(18, 2))
    targets: Mapped[list[str]] = mapped_column(JSON, default=list)
    state: Mapped[str] = mapped_column(String(24), index=True)
    officer_sub: Mapped[str] = mapped_column(String(128))
    court_code: Mapped[str] = mapped_column(String(32))  # ix_requests_court_created leads with it
    idempotency_key: Mapped[str] = mapped_column(String(128))
    payload_sha256: Mapped[str] = mapped_column(String(64))
    court_account: Mapped[str | None] = mapped_column(String(64))  # deducts: where the money goes
    # A control the gateway makes itself (gateway/controls/system_requests.py): the officer's
    # request it carries out, whose documents it carries and whose officers' credentials it shows.
    source_request_id: Mapped[str | None] = mapped_column(String(36))
    # Controls wait for a second person (an approver of the same court, not the proposer).
    decided_by: Mapped[str | None] = mapped_column(String(128))
    decided_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    decision_reason: Mapped[str | None] = mapped_column(String(500))
    # The 202 body as first sent, so a replay with the same key gets the same reply.
    accepted_reply: Mapped[dict[str, Any]] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utc_now)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utc_now, onupdate=utc_now)

    deliveries: Mapped[list["Delivery"]] = relationship(
        back_populates="request", lazy="selectin", order_by="Delivery.agency_id"
    )
    case: Mapped["Case"] = relationship(lazy="joined")
    subject: Mapped["Subject"] = relationship(lazy="joined")


class RequestCount(Base):
    """Requests accepted per minute by one officer or one court: what the hourly limits
    add up (gateway/requests/limits.py). Kept by the outbox's one writer in the request's
    own transaction, so a count is never ahead of or behind the requests committed."""

    __tablename__ = "request_counts"

    scope: Mapped[str] = mapped_column(String(8), primary_key=True)  # "officer" or "court"
    name: Mapped[str] = mapped_column(String(128), primary_key=True)  # the officer's sub or the court's code
    minute: Mapped[int] = mapped_column(Integer, primary_key=True)  # UTC Unix time // 60 (limits.minute_of)
    count: Mapped[int] = mapped_column(Integer)
