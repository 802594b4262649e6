from __future__ import annotations

from datetime import datetime
from decimal import Decimal

from sqlalchemy import DateTime, ForeignKey, Numeric, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from gateway.db import Base
from gateway.timeutil import new_id, utc_now


class Subject(Base):
    """A person or organisation, once per identity number, shared by every case
    that names it (so the same debtor's results can be found across cases).
    ``name`` is the name first registered and is never rewritten: the name a
    case uses is its party's (``Party.name``), so one court's spelling cannot
    rename the debtor in another court's case."""

    __tablename__ = "subjects"
    __table_args__ = (UniqueConstraint("kind", "id_number", name="uq_subjects_kind_id_number"),)

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    kind: Mapped[str] = mapped_column(String(16))
    name: Mapped[str] = mapped_column(String(100))
    # Operational data: agencies need the number itself. Logs and the audit log
    # only ever hold its masked form and keyed hash.
    id_number: Mapped[str] = mapped_column(String(18))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utc_now)


class Case(Base):
    __tablename__ = "cases"

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    case_number: Mapped[str] = mapped_column(String(64), unique=True)
    court_code: Mapped[str] = mapped_column(String(32), index=True)
    amount_owed: Mapped[Decimal] = mapped_column(Numeric(18, 2))
    registered_by: Mapped[str] = mapped_column(String(128))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utc_now)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utc_now, onupdate=utc_now)

    parties: Mapped[list[Party]] = relationship(back_populates="case", cascade="all, delete-orphan", lazy="selectin")


class Party(Base):
    __tablename__ = "parties"
    __table_args__ = (UniqueConstraint("case_id", "subject_id", "role", name="uq_parties_case_subject_role"),)

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    case_id: Mapped[str] = mapped_column(ForeignKey("cases.id", ondelete="CASCADE"), index=True)
    subject_id: Mapped[str] = mapped_column(ForeignKey("subjects.id"), index=True)
    role: Mapped[str] = mapped_column(String(16))
    # The name this case registered the subject under: it goes to agencies for this
    # case's requests and into this case's report.
    name: Mapped[str] = mapped_column(String(100))

    case: Mapped[Case] = relationship(back_populates="parties")
    subject: Mapped[Subject] = relationship(lazy="joined")
