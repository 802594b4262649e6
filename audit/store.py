"""Append to and verify the audit log through the caller's session.

Appends are serialised so the chain never forks: on PostgreSQL by a transaction
advisory lock taken before reading the head, on SQLite by the write lock that
``BEGIN IMMEDIATE`` already holds. The lock lasts until the caller's
transaction ends, so the event commits with the change it records.
"""

from __future__ import annotations

import hashlib
import json
import hmac
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Iterator, Protocol

from sqlalchemy import Connection, insert, select, text
from sqlalchemy.orm import Session

from audit.chain import GENESIS_HASH, HASHED_FIELDS, ChainReport, event_hash, format_time, verify_chain
from audit.models import AuditArchive, AuditEvent
from schemas.identifiers import mask_id_number

# Any fixed 64-bit number, the same in every process sharing the database.
_CHAIN_LOCK_KEY = 0x6175646974  # "audit"

# Statements built once: building them per call costs more than running them.
_LOCK_CHAIN = text("SELECT pg_advisory_xact_lock(:key)")
_CHAIN_HEAD = select(AuditEvent.seq, AuditEvent.hash).order_by(AuditEvent.seq.desc()).limit(1)
_APPEND = insert(AuditEvent.__table__)


class ActorLike(Protocol):
    sub: str
    role: str
    court: str | None
    agency: str | None


@dataclass(frozen=True)
class SystemActor:
    """The gateway acting on its own (a worker), not on a token's behalf."""

    sub: str
    role: str = "system"
    court: str | None = None
    agency: str | None = None


class AuditLog:
    def __init__(self, subject_key: bytes):
        if len(subject_key) < 16:
            raise ValueError("the audit subject key must be at least 16 bytes")
        self._subject_key = subject_key

    def subject_hash(self, id_number: str) -> str:
        """Keyed hash of an identity number: searchable, not reversible without the key."""
        return hmac.new(self._subject_key, id_number.encode("utf-8"), hashlib.sha256).hexdigest()

    def record(
        self,
        session: Session | Connection,
        *,
        action: str,
        outcome: str,
        actor: ActorLike | None = None,
        case_number: str | None = None,
        subject_id_number: str | None = None,
        request_id: str | None = None,
        delivery_id: str | None = None,
        details: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        """Append one event in the caller's transaction. ``details`` must hold no
        floats (they would not encode the same way everywhere) and no identity
        numbers in clear."""
        bind = session.get_bind() if isinstance(session, Session) else session  # a Session or a Connection
        if bind.dialect.name == "postgresql":
            session.execute(_LOCK_CHAIN, {"key": _CHAIN_LOCK_KEY})
        head = session.execute(_CHAIN_HEAD).first()
        seq, prev_hash = (head.seq + 1, head.hash) if head else (1, GENESIS_HASH)
        fields: dict[str, Any] = {
            "seq": seq,
            "at": datetime.now(timezone.utc),
            "actor_sub": actor.sub if actor else None,
            "actor_role": actor.role if actor else None,
            "actor_court": actor.court if actor else None,
            "actor_agency": actor.agency if actor else None,
            "action": action,
            "outcome": outcome,
            "case_number": case_number,
            "subject_hash": self.subject_hash(subject_id_number) if subject_id_number else None,
            "subject_masked": mask_id_number(subject_id_number) if subject_id_number else None,
            "request_id": request_id,
            "delivery_id": delivery_id,
            "details": details or {},
        }
        event = {**fields, "prev_hash": prev_hash, "hash": event_hash(fields, prev_hash)}
        session.execute(_APPEND, [event])
        return event


_EVENT_NAMES = (*HASHED_FIELDS, "prev_hash", "hash")
_EVENT_COLUMNS = [AuditEvent.__table__.c[name] for name in _EVENT_NAMES]
# Plain text, so no column types: rows come back as the driver gives them, without
# SQLAlchemy's per-value processing (on SQLite its datetime and JSON parsing cost
# more than the hashing when verifying millions of events).
_RAW_BATCH = text(f"SELECT {', '.join(_EVENT_NAMES)} FROM audit_events "
                  "WHERE seq > :after AND seq <= :upto ORDER BY seq LIMIT :batch")
_NO_END = 2**62


def _sqlite_time(value: str) -> str:
    """SQLAlchemy stores UTC on SQLite as 'YYYY-MM-DD HH:MM:SS.ffffff': the hashed form is a slice away."""
    if len(value) == 26 and value[10] == " ":
        return value[:10] + "T" + value[11:] + "Z"
    return format_time(datetime.fromisoformat(value))


def event_rows(session: Session | Connection, *, after_seq: int = 0, up_to_seq: int | None = None,
               batch: int = 5000) -> Iterator[dict[str, Any]]:
    """Events as plain dicts in sequence order, read in batches, ``at`` in its
    hashed text form and ``details`` decoded."""
    bind = session.get_bind() if isinstance(session, Session) else session
    sqlite = bind.dialect.name == "sqlite"
    last, end = after_seq, _NO_END if up_to_seq is None else up_to_seq
    at, details = _EVENT_NAMES.index("at"), _EVENT_NAMES.index("details")
    while True:
        rows = session.execute(_RAW_BATCH, {"after": last, "upto": end, "batch": batch}).all()
        if not rows:
            return
        for row in rows:
            event = dict(zip(_EVENT_NAMES, row))
            if sqlite:
                event["at"] = _sqlite_time(row[at])
                event["details"] = json.loads(row[details])
            else:
                event["at"] = format_time(row[at])
                if isinstance(row[details], str):
                    event["details"] = json.loads(row[details])
            yield event
        last = rows[-1][0]


def live_chain_start(session: Session | Connection) -> tuple[int, str]:
    """Where the events still in the database begin: after the last archived event
    (whose hash the archive record keeps), or at the genesis."""
    last = session.execute(
        select(AuditArchive.last_seq, AuditArchive.last_hash).order_by(AuditArchive.last_seq.desc()).limit(1)
    ).first()
    return (last.last_seq + 1, last.last_hash) if last else (1, GENESIS_HASH)


def verify_log(session: Session, *, batch: int = 5000) -> ChainReport:
    """Recompute the live chain from the database, naming the first bad event."""
    start_seq, start_hash = live_chain_start(session)
    return verify_chain(event_rows(session, after_seq=start_seq - 1, batch=batch),
                        start_seq=start_seq, start_hash=start_hash)


def as_dict(event: AuditEvent) -> dict[str, Any]:
    row = {name: getattr(event, name) for name in HASHED_FIELDS}
    row["at"] = event.at
    row["prev_hash"], row["hash"] = event.prev_hash, event.hash
    return row
