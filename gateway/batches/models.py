"""Batches (集中查控): one submission of many debtors of a court's cases, and its lines.

A batch is stored whole at submission (every line checked first, so nothing is
half-accepted); its lines become one inquiry each afterwards, in small
transactions, so a batch of 1,000 never holds the database's write lock for long.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import JSON, CheckConstraint, DateTime, ForeignKey, Index, Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from gateway.batches.states import LineState
from gateway.db import Base
from gateway.transitions import state_check
from gateway.timeutil import new_id, utc_now


class Batch(Base):
    __tablename__ = "batches"
    # An Idempotency-Key is scoped to the officer who sent it, as for requests.
    __table_args__ = (UniqueConstraint("officer_sub", "idempotency_key", name="uq_batches_idempotency"),)

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    court_code: Mapped[str] = mapped_column(String(32), index=True)
    # Who submitted it: each line's request is this officer's, as if sent one by one.
    officer_sub: Mapped[str] = mapped_column(String(128))
    officer_role: Mapped[str] = mapped_column(String(32))
    idempotency_key: Mapped[str] = mapped_column(String(128))
    payload_sha256: Mapped[str] = mapped_column(String(64))
    line_count: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utc_now)


class BatchLine(Base):
    __tablename__ = "batch_lines"
    __table_args__ = (
        Index("ix_batch_lines_state", "state", "batch_id"),
        # The states of gateway/batches/states.py (migration 0017_state_checks).
        CheckConstraint(state_check(LineState), name="state"),
    )

    batch_id: Mapped[str] = mapped_column(ForeignKey("batches.id"), primary_key=True)
    position: Mapped[int] = mapped_column(Integer, primary_key=True)  # 0, 1, ... as submitted (lines[i])
    case_number: Mapped[str] = mapped_column(String(64))
    subject_kind: Mapped[str] = mapped_column(String(16))
    subject_name: Mapped[str] = mapped_column(String(100))
    # Operational data, as in subjects: the agencies need the number itself.
    id_number: Mapped[str] = mapped_column(String(18))
    categories: Mapped[list[str]] = mapped_column(JSON)
    state: Mapped[str] = mapped_column(String(16))  # pending, accepted (its request made), refused
    request_id: Mapped[str | None] = mapped_column(String(36))
    error: Mapped[str | None] = mapped_column(String(500))
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utc_now)
