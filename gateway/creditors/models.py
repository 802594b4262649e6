"""Consents to a later case's deduct, and distribution plans with their shares."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

from sqlalchemy import JSON, DateTime, ForeignKey, Integer, Numeric, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from gateway.db import Base
from gateway.timeutil import new_id


class FreezeConsent(Base):
    """The case holding an earlier freeze on an account lets a later case deduct from it."""

    __tablename__ = "freeze_consents"
    __table_args__ = (UniqueConstraint("control_id", "later_case_id", name="uq_freeze_consents_control_later"),)

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    control_id: Mapped[str] = mapped_column(ForeignKey("controls.id"), index=True)  # the earlier freeze
    later_case_id: Mapped[str] = mapped_column(ForeignKey("cases.id"))
    consented_by: Mapped[str] = mapped_column(String(128))
    consented_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    reason: Mapped[str | None] = mapped_column(String(500))


class DistributionPlan(Base):
    """Money one court received for several cases against one debtor, and how it is shared."""

    __tablename__ = "distribution_plans"

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    court_code: Mapped[str] = mapped_column(String(32))  # the court that received the money and distributes it
    case_id: Mapped[str] = mapped_column(ForeignKey("cases.id"))  # its case the money came in for
    subject_id: Mapped[str] = mapped_column(ForeignKey("subjects.id"))
    amount: Mapped[Decimal] = mapped_column(Numeric(18, 2))
    surplus: Mapped[Decimal] = mapped_column(Numeric(18, 2))  # above every claim: returned to the debtor
    priority_classes: Mapped[list[str]] = mapped_column(JSON)  # the classes in force when it was made
    created_by: Mapped[str] = mapped_column(String(128))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class DistributionShare(Base):
    __tablename__ = "distribution_shares"

    plan_id: Mapped[str] = mapped_column(ForeignKey("distribution_plans.id"), primary_key=True)
    case_id: Mapped[str] = mapped_column(ForeignKey("cases.id"), primary_key=True, index=True)
    position: Mapped[int] = mapped_column(Integer)
    priority: Mapped[str] = mapped_column(String(32))
    claim: Mapped[Decimal] = mapped_column(Numeric(18, 2))  # what the case was still owed
    share: Mapped[Decimal] = mapped_column(Numeric(18, 2))
