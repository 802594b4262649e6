"""A bankruptcy application accepted against a debtor, as a court reported it."""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import Date, DateTime, ForeignKey, String
from sqlalchemy.orm import Mapped, mapped_column

from gateway.db import Base
from gateway.timeutil import new_id


class Bankruptcy(Base):
    __tablename__ = "bankruptcies"

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    # One per debtor: once accepted, enforcement against it stays suspended (art. 19).
    subject_id: Mapped[str] = mapped_column(ForeignKey("subjects.id"), unique=True)
    court_code: Mapped[str] = mapped_column(String(32))  # the court that accepted the application
    accepted_on: Mapped[date] = mapped_column(Date)  # the court date of the acceptance ruling
    administrator: Mapped[str] = mapped_column(String(200))  # 管理人
    bankruptcy_case_number: Mapped[str | None] = mapped_column(String(64))
    recorded_by: Mapped[str] = mapped_column(String(128))
    recorded_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
