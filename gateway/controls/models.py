"""The control ledger: one row per control the agencies reported placing, waiting
or ending, and one per deduct they reported transferring.

Written in the same transaction as the delivery result that reports it, from the
agency's word only (what was asked is in ``requests``/``deliveries``).
"""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal

from sqlalchemy import JSON, Date, DateTime, ForeignKey, Index, Integer, Numeric, String
from sqlalchemy.orm import Mapped, mapped_column

from gateway.db import Base
from gateway.timeutil import new_id, utc_now


class Control(Base):
    __tablename__ = "controls"
    __table_args__ = (Index("ix_controls_case_asset", "case_id", "agency_id", "identifier"),)

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    case_id: Mapped[str] = mapped_column(ForeignKey("cases.id"), index=True)
    subject_id: Mapped[str] = mapped_column(ForeignKey("subjects.id"), index=True)
    asset_id: Mapped[str | None] = mapped_column(String(36))  # the asset-report entry it was asked on
    agency_id: Mapped[str] = mapped_column(String(64))
    identifier: Mapped[str] = mapped_column(String(128))
    category: Mapped[str] = mapped_column(String(32))
    action: Mapped[str] = mapped_column(String(16))  # freeze, seal, watch, deduct (renewals keep the original)
    # in_force, partly, queued, watching (live: gateway.controls.ledger.LIVE_STATES); released,
    # exhausted (a deduct took it all); deduct rows: deducted (agency transferred), received (money arrived).
    # "lapsed" is never stored: a live control past its expiry is shown so.
    state: Mapped[str] = mapped_column(String(16), index=True)
    amount: Mapped[Decimal | None] = mapped_column(Numeric(18, 2))  # held now (freeze) or transferred (deduct)
    amount_requested: Mapped[Decimal | None] = mapped_column(Numeric(18, 2))
    deducted: Mapped[Decimal] = mapped_column(Numeric(18, 2), default=Decimal("0"))  # freeze rows: taken by deducts
    received: Mapped[Decimal | None] = mapped_column(Numeric(18, 2))  # deduct rows: money the court confirmed
    received_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    received_by: Mapped[str | None] = mapped_column(String(128))
    legal_basis_kind: Mapped[str | None] = mapped_column(String(32))
    legal_basis_number: Mapped[str | None] = mapped_column(String(64))
    placed_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    expires_at: Mapped[date | None] = mapped_column(Date)
    renewals: Mapped[int] = mapped_column(Integer, default=0)
    queue_position: Mapped[int | None] = mapped_column(Integer)
    ahead: Mapped[list[str]] = mapped_column(JSON, default=list)
    agency_reference: Mapped[str | None] = mapped_column(String(128))
    request_id: Mapped[str] = mapped_column(ForeignKey("requests.id"))  # the request that placed it
    delivery_id: Mapped[str] = mapped_column(ForeignKey("deliveries.id"))
    last_request_id: Mapped[str] = mapped_column(String(36))  # the latest request that changed it
    ended_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utc_now)


class RepeatFreeze(Base):
    """A freeze that tries again daily for its shortfall (opt-in per request), until
    covered, cancelled or out of days. Every attempt is a freeze request of its own."""

    __tablename__ = "repeat_freezes"

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    request_id: Mapped[str] = mapped_column(ForeignKey("requests.id"), unique=True)  # the freeze asked
    case_id: Mapped[str] = mapped_column(ForeignKey("cases.id"), index=True)
    amount: Mapped[Decimal] = mapped_column(Numeric(18, 2))  # the whole amount asked
    targets: Mapped[list[str]] = mapped_column(JSON)  # asset ids, in the order tried
    state: Mapped[str] = mapped_column(String(16), index=True)  # active, covered, cancelled, ended
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    attempt_request_ids: Mapped[list[str]] = mapped_column(JSON, default=list)
    next_attempt_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    ends_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    last_outcome: Mapped[str | None] = mapped_column(String(200))
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utc_now)
