"""Checkpoints in the database: write one of the current head, read them back,
and verify the live log against them (audit/checkpoints.py does the pure part).

A checkpoint reads the committed head and signs it; it takes no chain lock, so
it never holds up appends. Appends commit in sequence order (they are
serialised), so the committed head always has every event before it.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from sqlalchemy import Connection, insert, select
from sqlalchemy.orm import Session

from audit.archive import archived_hashes, verify_archive
from audit.archive_store import load_archive_records
from audit.chain import ChainReport, verify_rows
from audit.checkpoints import (
    IntegrityReport,
    hold_against_checkpoints,
    sign_checkpoint,
    signature_failure,
    sorted_checkpoints,
    with_mac_verdict,
)
from audit.models import AuditCheckpoint, AuditEvent
from audit.parallel import database_url, verify_parts
from audit.store import event_tuples, live_chain_start

_CHECKPOINT_FIELDS = ("seq", "head_hash", "event_count", "signed_at", "key_id", "signature")
_HEAD = select(AuditEvent.seq, AuditEvent.hash).order_by(AuditEvent.seq.desc()).limit(1)
_LAST_CHECKPOINT = select(AuditCheckpoint.seq, AuditCheckpoint.signed_at).order_by(AuditCheckpoint.id.desc()).limit(1)


def last_checkpoint(session: Session | Connection) -> tuple[int, datetime] | None:
    """(seq, signed_at) of the newest checkpoint, or None."""
    row = session.execute(_LAST_CHECKPOINT).first()
    return (row.seq, row.signed_at) if row else None


def head_seq(session: Session | Connection) -> int:
    row = session.execute(_HEAD).first()
    return row.seq if row else 0


def write_checkpoint(session: Session | Connection, key: Ed25519PrivateKey, *, now: datetime,
                     force: bool = False) -> dict[str, Any] | None:
    """Sign the committed head and store the checkpoint; return it. Returns None
    when the log is empty, or (unless ``force``) when the newest checkpoint is
    already at the head."""
    head = session.execute(_HEAD).first()
    if head is None:
        return None
    last = last_checkpoint(session)
    if last and last[0] == head.seq and not force:
        return None
    checkpoint = sign_checkpoint(key, seq=head.seq, head_hash=head.hash, event_count=head.seq, signed_at=now)
    session.execute(insert(AuditCheckpoint.__table__), [checkpoint])
    return checkpoint


def load_checkpoints(session: Session | Connection) -> list[dict[str, Any]]:
    rows = session.execute(select(*(AuditCheckpoint.__table__.c[f] for f in _CHECKPOINT_FIELDS))
                           .order_by(AuditCheckpoint.id)).mappings().all()
    return [dict(row) for row in rows]


def verify_log_with_checkpoints(session: Session, public_key: Ed25519PublicKey | None, *, batch: int = 5000,
                                archive_dir: Path | None = None, workers: int = 1,
                                event_key: bytes | None = None) -> IntegrityReport:
    """The live chain (from the last archive on) against every checkpoint.

    With ``archive_dir``, the archive files first: their own chain of digests,
    the database's archive records against them, their events as one chain from
    the genesis, and the checkpoints of archived events against those events;
    then the live log must go on from the archive's last event. ``workers`` > 1
    walks the live chain in that many processes (audit/parallel.py; the CLI does).
    ``event_key`` (``AuditLog.event_key``) checks each event's MAC; without it the
    report says ``macs_checked`` False.
    """
    checkpoints = load_checkpoints(session)
    start_seq, start_hash = live_chain_start(session)
    marks = sorted_checkpoints(checkpoints)
    failed = signature_failure(marks, public_key, start_seq=start_seq, start_hash=start_hash)
    if failed:
        return failed
    if archive_dir is not None:
        archived = verify_archive(archive_dir, load_archive_records(session))
        if not archived.ok:
            chain = archived.chain
            if archived.problem:
                chain = ChainReport(False, chain.events_checked, chain.head_seq, chain.head_hash, chain.head_seq + 1,
                                    archived.problem, "archive")
            return IntegrityReport(chain, 0, None)
        if (archived.chain.head_seq + 1, archived.chain.head_hash) != (start_seq, start_hash):
            chain = ChainReport(False, archived.chain.events_checked, archived.chain.head_seq, archived.chain.head_hash,
                                archived.chain.head_seq + 1,
                                f"the archive ends at event {archived.chain.head_seq} but the database's archive records "
                                f"say the live log starts at event {start_seq}", "archive")
            return IntegrityReport(chain, 0, None)
        old_marks = [c for c in checkpoints if int(c["seq"]) < start_seq]
        hashes = archived_hashes(archive_dir, {int(c["seq"]) for c in old_marks})
        for mark in old_marks:
            if hashes.get(int(mark["seq"])) != mark["head_hash"]:
                chain = ChainReport(False, archived.chain.events_checked, archived.chain.head_seq,
                                    archived.chain.head_hash, int(mark["seq"]),
                                    f"archived event {mark['seq']} has another hash than its signed checkpoint",
                                    "rewritten")
                return IntegrityReport(chain, 0, None)
    if workers <= 1:
        chain = verify_rows(event_tuples(session, after_seq=start_seq - 1, batch=batch),
                            start_seq=start_seq, start_hash=start_hash, mac_key=event_key)
    else:
        chain = verify_parts(database_url(session.get_bind()), start_seq=start_seq, start_hash=start_hash,
                             head_seq=head_seq(session), workers=workers, mac_key=event_key)
    # The walked chain vouches for the stored hashes up to its head.
    wanted = [int(c["seq"]) for c in marks if start_seq <= int(c["seq"]) <= chain.head_seq]
    hashes = {seq: hash_ for seq, hash_ in session.execute(
        select(AuditEvent.seq, AuditEvent.hash).where(AuditEvent.seq.in_(wanted)))} if wanted else {}
    return with_mac_verdict(hold_against_checkpoints(chain, marks, hashes, start_seq=start_seq),
                            macs_checked=event_key is not None)
