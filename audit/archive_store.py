"""Moving old events into archive files (audit/archive.py) and out of the database.

One call archives the contiguous run of live events older than the cut-off:
it checks that run as a chain first (a broken chain is never archived, it is
reported), writes the file durably, records it in ``audit_archives`` and
deletes the events, the record and the delete in one transaction. The
append-only trigger lets the delete through only because the record now
covers those events (see migration 0003).
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import delete, func, insert, select
from sqlalchemy.orm import Session

from audit.archive import NO_PREVIOUS_FILE, write_archive_file
from audit.chain import verify_chain
from audit.models import AuditArchive, AuditEvent
from audit.store import event_rows, live_chain_start


class ArchiveRefused(Exception):
    """The events to archive do not verify; nothing was written or deleted."""


def load_archive_records(session: Session) -> list[dict[str, Any]]:
    columns = [AuditArchive.__table__.c[n] for n in
               ("file_name", "first_seq", "last_seq", "last_hash", "file_sha256", "prev_file_sha256", "archived_at")]
    return [dict(r) for r in session.execute(select(*columns).order_by(AuditArchive.last_seq)).mappings()]


def archive_older_than(session: Session, directory: Path, *, cutoff: datetime, now: datetime,
                       max_events: int = 500_000) -> dict[str, Any] | None:
    """Archive live events older than ``cutoff`` (at most ``max_events``, one file,
    never the newest event); return the archive record, or None if nothing is old enough."""
    start_seq, start_hash = live_chain_start(session)
    first_young = session.execute(
        select(func.min(AuditEvent.seq)).where(AuditEvent.seq >= start_seq, AuditEvent.at >= cutoff)
    ).scalar_one()
    head = session.execute(select(func.max(AuditEvent.seq))).scalar_one() or 0
    # The newest event always stays: appends read the chain head from this table.
    last_seq = min((first_young - 1) if first_young is not None else head, head - 1, start_seq + max_events - 1)
    if last_seq < start_seq:
        return None
    events = list(event_rows(session, after_seq=start_seq - 1, up_to_seq=last_seq))
    report = verify_chain(events, start_seq=start_seq, start_hash=start_hash)
    if not report.ok or report.head_seq != last_seq:
        raise ArchiveRefused(f"events {start_seq}..{last_seq} do not verify, so they are not archived: "
                             f"event {report.first_bad_seq}: {report.problem}")
    previous = session.execute(
        select(AuditArchive.file_sha256).order_by(AuditArchive.last_seq.desc()).limit(1)).scalar()
    record = write_archive_file(directory, events, previous or NO_PREVIOUS_FILE)
    record["archived_at"] = now
    session.execute(insert(AuditArchive.__table__), [record])
    session.execute(delete(AuditEvent.__table__).where(AuditEvent.seq >= start_seq, AuditEvent.seq <= last_seq))
    return record
