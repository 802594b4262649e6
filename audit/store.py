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

from sqlalchemy import JSON, Connection, Text, bindparam, cast, insert, select, text, type_coerce
from sqlalchemy.orm import Session

from audit.chain import (
    GENESIS_HASH,
    HASHED_FIELDS,
    ROW_FIELDS,
    CanonicalJSONText,
    ChainReport,
    canonical_json,
    decoded_row,
    event_hash,
    event_mac,
    event_mac_key,
    format_time,
    verify_rows,
)
from audit.models import AuditArchive, AuditEvent
from schemas.identifiers import mask_id_number

# Any fixed 64-bit number, the same in every process sharing the database.
_CHAIN_LOCK_KEY = 0x6175646974  # "audit"

# Statements built once: building them per call costs more than running them.
_LOCK_CHAIN = text("SELECT pg_advisory_xact_lock(:key)")
_CHAIN_HEAD = select(AuditEvent.seq, AuditEvent.hash).order_by(AuditEvent.seq.desc()).limit(1)
# ``details`` is stored as its canonical JSON text (the form that is hashed), bound
# as text, so that verification can hash the stored text as it is instead of
# decoding and re-encoding it (a quarter of the time per event). PostgreSQL's
# json type keeps the text verbatim; the cast makes the bound text json.
_DETAILS_TEXT = type_coerce(bindparam("details_text"), Text)
_APPEND = {"sqlite": insert(AuditEvent.__table__).values(details=_DETAILS_TEXT),
           "postgresql": insert(AuditEvent.__table__).values(details=cast(_DETAILS_TEXT, JSON))}


class ActorLike(Protocol):
    # Read-only members, so frozen dataclasses (Principal, SystemActor) match.
    @property
    def sub(self) -> str: ...
    @property
    def role(self) -> str: ...
    @property
    def court(self) -> str | None: ...
    @property
    def agency(self) -> str | None: ...


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
        self._event_key = event_mac_key(subject_key)

    @property
    def event_key(self) -> bytes:
        """The key of the events' MACs, for verifying them (audit/chain.py)."""
        return self._event_key

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
        dialect = bind.dialect.name
        if dialect == "postgresql":
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
        this_hash = event_hash(fields, prev_hash)
        event = {**fields, "prev_hash": prev_hash, "hash": this_hash, "mac": event_mac(self._event_key, this_hash)}
        row = {k: v for k, v in event.items() if k != "details"}
        row["details_text"] = canonical_json(fields["details"])
        session.execute(_APPEND["postgresql" if dialect == "postgresql" else "sqlite"], [row])
        return event

    def record_many(self, session: Session | Connection, events: list[dict[str, Any]]) -> None:
        """Append several events in the caller's transaction, chained in order: one lock,
        one read of the head, one multi-row insert (a batch file's thousands of results).
        Each item takes ``record``'s keyword arguments."""
        if not events:
            return
        bind = session.get_bind() if isinstance(session, Session) else session
        dialect = bind.dialect.name
        if dialect == "postgresql":
            session.execute(_LOCK_CHAIN, {"key": _CHAIN_LOCK_KEY})
        head = session.execute(_CHAIN_HEAD).first()
        seq, prev_hash = (head.seq, head.hash) if head else (0, GENESIS_HASH)
        now = datetime.now(timezone.utc)
        rows = []
        for item in events:
            seq += 1
            actor, subject = item.get("actor"), item.get("subject_id_number")
            fields: dict[str, Any] = {
                "seq": seq, "at": now,
                "actor_sub": actor.sub if actor else None, "actor_role": actor.role if actor else None,
                "actor_court": actor.court if actor else None, "actor_agency": actor.agency if actor else None,
                "action": item["action"], "outcome": item["outcome"], "case_number": item.get("case_number"),
                "subject_hash": self.subject_hash(subject) if subject else None,
                "subject_masked": mask_id_number(subject) if subject else None,
                "request_id": item.get("request_id"), "delivery_id": item.get("delivery_id"),
                "details": item.get("details") or {},
            }
            this_hash = event_hash(fields, prev_hash)
            row = {k: v for k, v in fields.items() if k != "details"}
            row.update(prev_hash=prev_hash, hash=this_hash, mac=event_mac(self._event_key, this_hash),
                       details_text=canonical_json(fields["details"]))
            rows.append(row)
            prev_hash = this_hash
        session.execute(_APPEND["postgresql" if dialect == "postgresql" else "sqlite"], rows)


_NO_END = 2**62


def _sqlite_time(value: str) -> str:
    """SQLAlchemy stores UTC on SQLite as 'YYYY-MM-DD HH:MM:SS.ffffff': the hashed form is a slice away."""
    if len(value) == 26 and value[10] == " ":
        return value[:10] + "T" + value[11:] + "Z"
    return format_time(datetime.fromisoformat(value))


def event_tuples(session: Session | Connection, *, after_seq: int = 0, up_to_seq: int | None = None,
                 batch: int = 5000) -> Iterator[tuple]:
    """Events as tuples in ROW_FIELDS order, in sequence order, read in batches,
    ``at`` in its hashed text form and ``details`` decoded.

    Read through the driver's own cursor in the caller's transaction: SQLAlchemy's
    row objects and type processing cost more per event than the hashing does."""
    connection = session.connection() if isinstance(session, Session) else session
    sqlite = connection.dialect.name == "sqlite"
    marker = "?" if connection.dialect.paramstyle == "qmark" else "%s"
    columns = ", ".join(ROW_FIELDS) if sqlite else ", ".join(ROW_FIELDS).replace("details", "details::text")
    query = (f"SELECT {columns} FROM audit_events "
             f"WHERE seq > {marker} AND seq <= {marker} ORDER BY seq LIMIT {marker}")
    dbapi_connection = connection.connection.dbapi_connection
    if dbapi_connection is None:  # only after the pool invalidated it, never inside a transaction
        raise RuntimeError("the audit log's database connection was invalidated mid-transaction")
    cursor = dbapi_connection.cursor()
    last, end = after_seq, _NO_END if up_to_seq is None else up_to_seq
    loads = json.loads
    try:
        while True:
            cursor.execute(query, (last, end, batch))
            rows = cursor.fetchall()
            if not rows:
                return
            for (seq, at, a_sub, a_role, a_court, a_agency, action, outcome, case, s_hash, s_masked, req, dlv,
                 details, prev, digest, mac) in rows:
                at = (at[:10] + "T" + at[11:] + "Z" if len(at) == 26 and at[10] == " " else _sqlite_time(at)) \
                    if sqlite else format_time(at)
                # Stored canonically (see _APPEND) unless written before that: '": ' never
                # appears in canonical JSON outside a string, and always in json.dumps' default.
                details = CanonicalJSONText(details) if '": ' not in details else loads(details)
                yield (seq, at, a_sub, a_role, a_court, a_agency, action, outcome, case, s_hash, s_masked, req, dlv,
                       details, prev, digest, mac)
            last = rows[-1][0]
    finally:
        cursor.close()


def event_rows(session: Session | Connection, *, after_seq: int = 0, up_to_seq: int | None = None,
               batch: int = 5000) -> Iterator[dict[str, Any]]:
    """The same events as plain dicts."""
    for row in event_tuples(session, after_seq=after_seq, up_to_seq=up_to_seq, batch=batch):
        yield dict(zip(ROW_FIELDS, decoded_row(row), strict=True))


def live_chain_start(session: Session | Connection) -> tuple[int, str]:
    """Where the events still in the database begin: after the last archived event
    (whose hash the archive record keeps), or at the genesis."""
    last = session.execute(
        select(AuditArchive.last_seq, AuditArchive.last_hash).order_by(AuditArchive.last_seq.desc()).limit(1)
    ).first()
    return (last.last_seq + 1, last.last_hash) if last else (1, GENESIS_HASH)


def verify_log(session: Session, *, batch: int = 5000, mac_key: bytes | None = None) -> ChainReport:
    """Recompute the live chain from the database, naming the first bad event
    (with ``mac_key``, MACs too: see ``ChainReport.mac_problem``)."""
    start_seq, start_hash = live_chain_start(session)
    return verify_rows(event_tuples(session, after_seq=start_seq - 1, batch=batch),
                       start_seq=start_seq, start_hash=start_hash, mac_key=mac_key).with_mac_break()


def as_dict(event: AuditEvent) -> dict[str, Any]:
    row = {name: getattr(event, name) for name in HASHED_FIELDS}
    row["at"] = event.at
    row["prev_hash"], row["hash"], row["mac"] = event.prev_hash, event.hash, event.mac
    return row
