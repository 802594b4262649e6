"""Append to and verify the audit log through the caller's session.

An append is atomic with the change it records: it is written in the caller's
transaction and commits or rolls back with it. On PostgreSQL it takes no lock on
the chain: the business transaction writes its event to ``audit_pending``
(content and Merkle leaf hash, no sequence number), so processes never queue
behind one another, and the sequencer (audit/sequencing.py, run leased by
gateway/auditing/sequencer.py) gives pending events their places, chains, MACs
and adds them to the Merkle tree in batches. On SQLite, whose one writer
serialises write transactions anyway, a transaction that writes many events
at once (a batch file's thousands, ``CHAIN_IN_PLACE_FROM`` or more) chains them
itself (audit/sequencing.py: append_sequenced), after any older pending ones: a
sequencer pass integrating them would hold the one write lock for as long while
the batch path's next writes wait. A transaction of a few events writes them
pending, as on PostgreSQL: its commit then writes one small row, not the event,
its indexes and tree nodes, and the sequencer chains a few hundred at once
(bench/RESULTS.md, 2026-12-07 13:40). Either way the content is encoded once,
for the leaf and the chain hash both.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Iterator, Protocol

from sqlalchemy import JSON, Connection, Text, bindparam, cast, insert, select, type_coerce
from sqlalchemy.orm import Session

from audit.chain import (
    GENESIS_HASH,
    HASHED_FIELDS,
    LEAF_FIELDS,
    ROW_FIELDS,
    CanonicalJSONText,
    ChainReport,
    canonical_json,
    content_leaf_bytes,
    decoded_row,
    encoded_content,
    event_mac_function,
    event_mac_key,
    format_time,
    hmac_sha256_function,
    verify_rows,
)
from audit.merkle import leaf_hash
from audit.models import AuditArchive, AuditEvent, AuditPending
from schemas.identifiers import mask_id_number

log = logging.getLogger(__name__)
# An event to append: its content in LEAF_FIELDS order (``at`` as hashed text, ``details``
# as canonical JSON text), the content's encoding (audit/chain.py: encoded_content), its leaf hash.
Content = tuple[tuple[Any, ...], tuple[str, ...], bytes]

# Statements built once: building them per call costs more than running them.
# inline: no RETURNING of the new id (nothing reads it), so the answer recorder can pipeline it
_APPEND_PENDING = insert(AuditPending.__table__).inline()
# ``details`` is stored as its canonical JSON text (the form that is hashed), bound
# as text, so that verification can hash the stored text as it is instead of
# decoding and re-encoding it (a quarter of the time per event). PostgreSQL's
# json type keeps the text verbatim; the cast makes the bound text json.
_DETAILS_TEXT = type_coerce(bindparam("details_text"), Text)
APPEND_EVENTS = {"sqlite": insert(AuditEvent.__table__).values(details=_DETAILS_TEXT),
           "postgresql": insert(AuditEvent.__table__).values(details=cast(_DETAILS_TEXT, JSON))}  # by dialect


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


# On SQLite, a write of this many events or more is chained in its own transaction.
# Above a pull listing's 100 rows, below the batch path's writes (chunks of 500, files
# of thousands): at 32 the listings chained in place and first integrated the feeds'
# pending events on the poller's own round trip, and pull fell from 0.54 to 0.48
# (bench/RESULTS.md, 2026-12-07 18:10).
CHAIN_IN_PLACE_FROM = 256


class AuditLog:
    def __init__(self, subject_key: bytes, *, always_pending: bool = False,
                 chain_in_place_from: int = CHAIN_IN_PLACE_FROM):
        """``always_pending``: write every event to ``audit_pending`` for the
        sequencer, on SQLite too (the sequencer's tests run its path on both
        databases); by default SQLite chains a write of ``chain_in_place_from``
        events or more in the business transaction (1: every write, as tests of
        that path ask)."""
        if len(subject_key) < 16:
            raise ValueError("the audit subject key must be at least 16 bytes")
        from audit import sequencing  # sequencing reads through this module: imported once it is loaded

        self._sequencing = sequencing
        self._subject_key = subject_key
        self._subject_mac = hmac_sha256_function(subject_key)
        self._event_key = event_mac_key(subject_key)
        self._event_mac = event_mac_function(self._event_key)
        self._always_pending = always_pending
        self._chain_in_place_from = chain_in_place_from
        self._tails: dict[str, Any] = {}  # per SQLite database: see sequencing.append_sequenced

    @property
    def event_key(self) -> bytes:
        """The key of the events' MACs, for verifying them (audit/chain.py)."""
        return self._event_key

    def subject_hash(self, id_number: str) -> str:
        """Keyed hash of an identity number: searchable, not reversible without the key."""
        return self._subject_mac(id_number.encode("utf-8"))

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
        """Write one event in the caller's transaction (it commits or rolls back
        with the change it records), pending for the sequencer. ``details`` must
        hold no floats (they would not encode the same way everywhere) and no
        identity numbers in clear. Returns the event's content and leaf hash (the
        columns of ``audit_pending``)."""
        at = datetime.now(timezone.utc)
        content = self._content(format_time(at), actor, action, outcome, case_number, subject_id_number,
                                request_id, delivery_id, details)
        self._write(session, at, [content])
        return _pending_row(at, content)

    def record_many(self, session: Session | Connection, events: list[dict[str, Any]]) -> None:
        """Write several events in the caller's transaction, in this order (the
        sequencer keeps it): one multi-row insert (a batch file's thousands of
        results). Each item takes ``record``'s keyword arguments."""
        if not events:
            return
        at = datetime.now(timezone.utc)
        at_text, content = format_time(at), self._content
        self._write(session, at, [
            content(at_text, item.get("actor"), item["action"], item["outcome"], item.get("case_number"),
                    item.get("subject_id_number"), item.get("request_id"), item.get("delivery_id"), item.get("details"))
            for item in events])

    def integrate_pending(self, session: Session | Connection, *, limit: int | None = None) -> int:
        """Sequence the pending events now, in the caller's transaction (see
        audit/sequencing.py); readers that must see what was just written call it first."""
        return self._sequencing.integrate_pending(session, self._event_key, limit=limit)

    def _write(self, session: Session | Connection, at: datetime, contents: list[Content]) -> None:
        connection = session.connection() if isinstance(session, Session) else session
        if (connection.dialect.name == "sqlite" and not self._always_pending
                and len(contents) >= self._chain_in_place_from):
            try:
                self._sequencing.append_sequenced(connection, self._event_key, self._event_mac, contents,
                                                  self._tails)
                return
            except self._sequencing.ChainStateError:
                # What the sequencer does with a broken log: nothing chained onto it, the
                # events kept pending (the business change still commits with them).
                log.exception("audit events left pending: the stored chain and tree disagree")
        session.execute(_APPEND_PENDING, [_pending_row(at, content) for content in contents])

    def _content(self, at: str, actor: ActorLike | None, action: str, outcome: str, case_number: str | None,
                 subject: str | None, request_id: str | None, delivery_id: str | None,
                 details: dict[str, Any] | None) -> Content:
        """An event's content in LEAF_FIELDS order, its encoding and its leaf hash."""
        if actor is None:
            agency = court = role = sub = None
        else:
            agency, court, role, sub = actor.agency, actor.court, actor.role, actor.sub
        values = (action, agency, court, role, sub, at, case_number, delivery_id,
                  canonical_json(details) if details else "{}", outcome, request_id,
                  self._subject_mac(subject.encode("utf-8")) if subject else None,
                  mask_id_number(subject) if subject else None)
        encoded = encoded_content(values)
        return values, encoded, leaf_hash(content_leaf_bytes(encoded))


# LEAF_FIELDS' order: the columns of audit_pending from an event's content.
assert LEAF_FIELDS == ("action", "actor_agency", "actor_court", "actor_role", "actor_sub", "at", "case_number",
                       "delivery_id", "details", "outcome", "request_id", "subject_hash", "subject_masked")


def _pending_row(at: datetime, content: Content) -> dict[str, Any]:
    values, _, leaf = content
    row = dict(zip(LEAF_FIELDS, values, strict=True))
    row["at"], row["leaf_hash"] = at, leaf.hex()
    return row


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
                # Stored canonically (see APPEND_EVENTS) unless written before that: '": ' never
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
