"""Attachments: documents stored once by content, linked to the requests that
carry them, and each officer's credentials, filed once in advance.

An agency that polls (``mode = "pull"``) fetches a request's documents and its
officer's credentials by the request key, as the national inquiry system does
(``cxwsInfo``/``kzwsInfo``, ``zjInfo``); a control without them is refused at
intake, so an agency never has to send one back for that.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import DateTime, ForeignKey, Integer, LargeBinary, String
from sqlalchemy.orm import Mapped, mapped_column, relationship

from gateway.db import Base
from gateway.timeutil import utc_now


class Document(Base):
    """One file, stored once however many requests carry it: its SHA-256 is its name.
    MD5 is kept because agencies check documents by it (``WSINFO.MD5``)."""

    __tablename__ = "documents"

    sha256: Mapped[str] = mapped_column(String(64), primary_key=True)
    md5: Mapped[str] = mapped_column(String(32))
    media_type: Mapped[str] = mapped_column(String(64))  # application/pdf, image/jpeg, image/png
    size_bytes: Mapped[int] = mapped_column(Integer)
    content: Mapped[bytes] = mapped_column(LargeBinary)
    uploaded_by: Mapped[str] = mapped_column(String(128))  # the token subject of the first upload
    court_code: Mapped[str | None] = mapped_column(String(32))
    uploaded_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utc_now)


class RequestDocument(Base):
    """A document a request carries, in order (``XH``), under the name it was given (``WJMC``)."""

    __tablename__ = "request_documents"

    request_id: Mapped[str] = mapped_column(ForeignKey("requests.id"), primary_key=True)
    position: Mapped[int] = mapped_column(Integer, primary_key=True)  # 1, 2, ...
    document_sha256: Mapped[str] = mapped_column(ForeignKey("documents.sha256"), index=True)
    name: Mapped[str] = mapped_column(String(128))

    document: Mapped[Document] = relationship(lazy="joined")


class OfficerCredential(Base):
    """An officer's work card and official-duty card (numbers and images), filed once
    before the officer's first control; replaced, never versioned in place (the
    audit log keeps each filing)."""

    __tablename__ = "officer_credentials"

    officer_sub: Mapped[str] = mapped_column(String(128), primary_key=True)
    court_code: Mapped[str] = mapped_column(String(32))
    name: Mapped[str] = mapped_column(String(64))
    work_card_number: Mapped[str] = mapped_column(String(32))  # 工作证
    duty_card_number: Mapped[str] = mapped_column(String(32))  # 执行公务证
    work_card_image_sha256: Mapped[str] = mapped_column(ForeignKey("documents.sha256"))
    duty_card_image_sha256: Mapped[str] = mapped_column(ForeignKey("documents.sha256"))
    filed_by: Mapped[str] = mapped_column(String(128))
    filed_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utc_now)

    work_card_image: Mapped[Document] = relationship(foreign_keys=[work_card_image_sha256], lazy="joined")
    duty_card_image: Mapped[Document] = relationship(foreign_keys=[duty_card_image_sha256], lazy="joined")
