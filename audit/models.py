"""The audit log's table. Its own declarative base, so that ``audit`` imports
nothing of the gateway; the migrations carry both metadata."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, BigInteger, DateTime, Integer, MetaData, String
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "pk": "pk_%(table_name)s",
}


class AuditBase(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


class AuditEvent(AuditBase):
    """One event. The database refuses UPDATE and DELETE on this table (see the
    migration's triggers); ``seq`` is gapless and assigned under a lock."""

    __tablename__ = "audit_events"

    seq: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=False)
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    actor_sub: Mapped[str | None] = mapped_column(String(128), index=True)
    actor_role: Mapped[str | None] = mapped_column(String(32))
    actor_court: Mapped[str | None] = mapped_column(String(32), index=True)
    actor_agency: Mapped[str | None] = mapped_column(String(64), index=True)
    action: Mapped[str] = mapped_column(String(64), index=True)
    outcome: Mapped[str] = mapped_column(String(32))
    case_number: Mapped[str | None] = mapped_column(String(64), index=True)
    subject_hash: Mapped[str | None] = mapped_column(String(64), index=True)
    subject_masked: Mapped[str | None] = mapped_column(String(32))
    request_id: Mapped[str | None] = mapped_column(String(36), index=True)
    delivery_id: Mapped[str | None] = mapped_column(String(36), index=True)
    details: Mapped[dict[str, Any]] = mapped_column(JSON)
    prev_hash: Mapped[str] = mapped_column(String(64))
    hash: Mapped[str] = mapped_column(String(64))
