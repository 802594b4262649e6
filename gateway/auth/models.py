from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, DateTime, Index, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from gateway.db import Base


class LoginFailure(Base):
    """One failed UsernameToken login (gateway/auth/lockout.py), kept for one failure
    window: in the database, so every process counts the same failures."""

    __tablename__ = "login_failures"
    __table_args__ = (
        Index("ix_login_failures_user_failed", "user_key", "failed_at"),
        Index("ix_login_failures_source_failed", "source", "failed_at"),
        Index("ix_login_failures_failed_at", "failed_at"),  # the prune of expired rows
    )

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True)
    # SHA-256 of the user name tried: any length and any text an unauthenticated caller
    # sends becomes 64 hex digits here (the audit event holds a bounded, redacted form).
    user_key: Mapped[str] = mapped_column(String(64))
    source: Mapped[str] = mapped_column(String(64))  # the client's address (after a configured proxy)
    failed_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
