"""Terminated cases (终本) and the re-inquiries that follow them.

A ``CaseTermination`` is one termination of a case's present procedure: who, when,
why, what the gateway had proved then (``evidence``) and which assets were known
(``known_assets``, to tell new ones from old). Each ``TerminationRequery`` is one
scheduled round of network inquiries after it (art. 9: every six months for five
years): the requests it made, what they found that was not known at termination,
and the notice recorded for the creditor.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, DateTime, ForeignKey, Index, Integer, String, UniqueConstraint, text
from sqlalchemy.orm import Mapped, mapped_column

from gateway.db import Base
from gateway.timeutil import new_id, utc_now

TERMINATED, RESUMED = "terminated", "resumed"


class CaseTermination(Base):
    __tablename__ = "case_terminations"
    __table_args__ = (
        # One termination in force per case (a resumed case may be terminated again later).
        Index("uq_case_terminations_in_force", "case_id", unique=True,
              sqlite_where=text("state = 'terminated'"), postgresql_where=text("state = 'terminated'")),
        Index("ix_case_terminations_due", "state", "next_requery_at"),
    )

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    case_id: Mapped[str] = mapped_column(ForeignKey("cases.id"), index=True)
    court_code: Mapped[str] = mapped_column(String(32))
    state: Mapped[str] = mapped_column(String(16))  # terminated, resumed
    terminated_by: Mapped[str] = mapped_column(String(128))
    terminated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    reason: Mapped[str] = mapped_column(String(500))
    ruling_number: Mapped[str | None] = mapped_column(String(64))  # the termination ruling (终本裁定书)
    # The categories asked at termination: the re-inquiries ask the same.
    categories: Mapped[list[str]] = mapped_column(JSON)
    # The termination check as it stood (conditions and their evidence).
    evidence: Mapped[dict[str, Any]] = mapped_column(JSON)
    # [{"subject_id", "agency", "identifier"}] found for the debtors by then.
    known_assets: Mapped[list[dict[str, Any]]] = mapped_column(JSON)
    # The schedule: round n falls n * every months after termination, until requery_until.
    next_round: Mapped[int] = mapped_column(Integer, default=1)
    next_requery_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    requery_until: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    # When a re-inquiry first found property not known at termination (the case may be resumed).
    resumable_since: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    resumed_by: Mapped[str | None] = mapped_column(String(128))
    resumed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    resume_reason: Mapped[str | None] = mapped_column(String(500))


class TerminationRequery(Base):
    __tablename__ = "termination_requeries"
    # A round is made once, however many processes look (the second insert fails).
    __table_args__ = (UniqueConstraint("termination_id", "round", name="uq_termination_requeries_round"),
                      Index("ix_termination_requeries_state", "state"))

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    termination_id: Mapped[str] = mapped_column(ForeignKey("case_terminations.id"), index=True)
    round: Mapped[int] = mapped_column(Integer)
    due_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    made_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utc_now)
    request_ids: Mapped[list[str]] = mapped_column(JSON)  # one inquiry per debtor
    state: Mapped[str] = mapped_column(String(16))  # asked (answers awaited), finished
    # What the answers showed that was not known at termination: [{"subject_id", "agency",
    # "identifier", "category", "asset_id", "balance", "value"}].
    new_assets: Mapped[list[dict[str, Any]] | None] = mapped_column(JSON)
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # The result as recorded for the creditor (art. 9: 将查询结果告知申请执行人).
    creditor_notice: Mapped[dict[str, Any] | None] = mapped_column(JSON)
