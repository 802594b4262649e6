"""One row per move of a case from one court to another."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import DateTime, ForeignKey, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from gateway.db import Base
from gateway.timeutil import new_id


class CaseTransfer(Base):
    __tablename__ = "case_transfers"

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    case_id: Mapped[str] = mapped_column(ForeignKey("cases.id"), index=True)
    from_court: Mapped[str] = mapped_column(String(32))
    to_court: Mapped[str] = mapped_column(String(32))
    ordering_court: Mapped[str] = mapped_column(String(32))  # the higher court whose admin moved it
    ordered_by: Mapped[str] = mapped_column(String(128))
    order_number: Mapped[str] = mapped_column(String(64))  # the decision (指定执行决定书) that moves it
    reason: Mapped[str | None] = mapped_column(String(500))
    controls_in_force: Mapped[int] = mapped_column(Integer)  # attributed to the receiving court from now on
    transferred_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
