"""The audit log's table. Its own declarative base, so that ``audit`` imports
nothing of the gateway; the migrations carry both metadata."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any, ClassVar

from sqlalchemy import JSON, BigInteger, DateTime, Integer, MetaData, String, Table, Text
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "pk": "pk_%(table_name)s",
}


class AuditBase(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)

    if TYPE_CHECKING:
        # Each model maps one declared Table (DeclarativeBase types it as FromClause).
        __table__: ClassVar[Table]


class AuditEvent(AuditBase):
    """One event. The database refuses UPDATE and DELETE on this table (see the
    migration's triggers); ``seq`` is gapless, assigned by the sequencer
    (audit/sequencing.py) when it moves the event here from ``audit_pending``,
    or on SQLite, for a batch, by the business transaction itself (append_sequenced)."""

    __tablename__ = "audit_events"

    seq: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=False)
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True), index=True)
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
    # HMAC-SHA256 of ``hash`` under the event key (audit/chain.py: event_mac);
    # null only on events written before migration 0008.
    mac: Mapped[str | None] = mapped_column(String(64))


class AuditPending(AuditBase):
    """An event written by its business transaction and not yet sequenced (on
    SQLite those of transactions writing fewer than a batch): the
    content and its Merkle leaf hash, no place in the chain. The sequencer moves
    it to ``audit_events`` (and deletes it here) in one transaction, so an event
    is in exactly one of the two tables. ``id`` orders the integration."""

    __tablename__ = "audit_pending"

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True)
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    actor_sub: Mapped[str | None] = mapped_column(String(128))
    actor_role: Mapped[str | None] = mapped_column(String(32))
    actor_court: Mapped[str | None] = mapped_column(String(32))
    actor_agency: Mapped[str | None] = mapped_column(String(64))
    action: Mapped[str] = mapped_column(String(64))
    outcome: Mapped[str] = mapped_column(String(32))
    case_number: Mapped[str | None] = mapped_column(String(64))
    subject_hash: Mapped[str | None] = mapped_column(String(64))
    subject_masked: Mapped[str | None] = mapped_column(String(32))
    request_id: Mapped[str | None] = mapped_column(String(36))
    delivery_id: Mapped[str | None] = mapped_column(String(36))
    # Canonical JSON text, as audit_events stores it (audit/store.py).
    details: Mapped[str] = mapped_column(Text)
    # SHA-256(0x00 || leaf bytes) in hex (audit/chain.py: leaf_bytes; audit/merkle.py).
    leaf_hash: Mapped[str] = mapped_column(String(64))


class AuditMerkleNode(AuditBase):
    """The hash of one perfect subtree of the events' Merkle tree (audit/merkle.py):
    leaves [index * 2**level, (index + 1) * 2**level). Level 0 holds the leaf
    hashes. Written by the sequencer with the events; kept when events are archived,
    so proofs still reach archived events."""

    __tablename__ = "audit_merkle_nodes"

    level: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    index: Mapped[int] = mapped_column("idx", BigInteger().with_variant(Integer, "sqlite"), primary_key=True,
                                       autoincrement=False)
    hash: Mapped[str] = mapped_column(String(64))


class AuditCheckpoint(AuditBase):
    """A signed record of the chain head (audit/checkpoints.py). Append-only like
    the events: the migration's triggers refuse UPDATE, DELETE and TRUNCATE."""

    __tablename__ = "audit_checkpoints"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    seq: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), index=True)
    head_hash: Mapped[str] = mapped_column(String(64))
    event_count: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"))
    signed_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    key_id: Mapped[str] = mapped_column(String(64))
    signature: Mapped[str] = mapped_column(String(128))
    # The chain of checkpoints (audit/checkpoints.py): this one's place, and the
    # hash of the one before it, both signed. Null on checkpoints before 0008.
    number: Mapped[int | None] = mapped_column(BigInteger().with_variant(Integer, "sqlite"))
    prev_checkpoint_hash: Mapped[str | None] = mapped_column(String(64))
    # The Merkle tree the checkpoint signs (kind audit-checkpoint-v3): its size
    # (= seq) and root in hex. Null on checkpoints before 0018.
    tree_size: Mapped[int | None] = mapped_column(BigInteger().with_variant(Integer, "sqlite"))
    root_hash: Mapped[str | None] = mapped_column(String(64))


class AuditArchive(AuditBase):
    """One archive file of old events (audit/archive.py): the link between the
    archived past and the live log. Append-only; events up to the highest
    ``last_seq`` here are the only ones the triggers let be deleted."""

    __tablename__ = "audit_archives"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    file_name: Mapped[str] = mapped_column(String(128))
    first_seq: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"))
    last_seq: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"))
    last_hash: Mapped[str] = mapped_column(String(64))
    file_sha256: Mapped[str] = mapped_column(String(64))
    prev_file_sha256: Mapped[str] = mapped_column(String(64))
    archived_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
