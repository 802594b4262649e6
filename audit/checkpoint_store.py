"""Checkpoints in the database: write one of the current head, read them back,
and verify the live log against them (audit/checkpoints.py does the pure part).

A checkpoint reads the committed head and signs it, and the root of the Merkle
tree of that many events; it takes no chain lock, so it never holds up the
sequencer. The sequencer commits in sequence order (integrations are
serialised), so the committed head always has every event before it, and the
leaves and nodes of those events. Writers of
checkpoints are serialised among themselves (their own advisory lock on
PostgreSQL, the write lock on SQLite), so the chain of checkpoints never forks.
"""

from __future__ import annotations

import dataclasses
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Mapping, Sequence, cast

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import Connection, insert, select, text
from sqlalchemy.orm import Session

from audit.archive import archived_hashes, verify_archive
from audit.archive_store import load_archive_records
from audit.chain import GENESIS_HASH, ChainReport, format_time, verify_rows
from audit.checkpoints import (
    IntegrityReport,
    PublicKeys,
    checkpoint_chain_problem,
    checkpoint_hash,
    has_tree,
    hold_against_checkpoints,
    in_chain_order,
    is_chained,
    sign_checkpoint,
    signature_failure,
    sorted_checkpoints,
    with_mac_verdict,
)
from audit.merkle import tree_root
from audit.models import AuditCheckpoint, AuditEvent
from audit.parallel import database_url, verify_parts
from audit.sequencing import node_reader
from audit.store import event_tuples, live_chain_start
from audit.sqlite_walk import sqlite_walk

_CHECKPOINT_FIELDS = ("seq", "head_hash", "event_count", "signed_at", "key_id", "signature", "number",
                      "prev_checkpoint_hash", "tree_size", "root_hash")
_CHECKPOINT_LOCK_KEY = 0x6175646974_63  # "audit" + "c": not the chain's lock, appends go on meanwhile
_LOCK_CHECKPOINTS = text("SELECT pg_advisory_xact_lock(:key)")
_NEWEST_CHECKPOINT = (select(*(AuditCheckpoint.__table__.c[f] for f in _CHECKPOINT_FIELDS))
                      .order_by(AuditCheckpoint.id.desc()).limit(1))
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
    """Sign the committed head, chained to the newest checkpoint, and store it;
    return it. Returns None when the log is empty, or (unless ``force``) when the
    newest checkpoint is already at the head."""
    bind = session.get_bind() if isinstance(session, Session) else session
    if bind.dialect.name == "postgresql":
        session.execute(_LOCK_CHECKPOINTS, {"key": _CHECKPOINT_LOCK_KEY})
    head = session.execute(_HEAD).first()
    if head is None:
        return None
    # A RowMapping's keys are typed wider (columns too) than the names it is read by.
    newest = cast(Mapping[str, Any] | None, session.execute(_NEWEST_CHECKPOINT).mappings().first())
    if newest and newest["seq"] == head.seq and not force:
        return None
    if newest is None:
        number, previous_hash = 1, GENESIS_HASH
    elif is_chained(newest):
        number, previous_hash = int(newest["number"]) + 1, checkpoint_hash(newest)
    else:  # the first chained one after checkpoints from before the chain
        ordered = in_chain_order(load_checkpoints(session))
        number, previous_hash = len(ordered) + 1, checkpoint_hash(ordered[-1])
    # The sequencer writes an event and its leaf in one transaction: the tree's size is the head's seq.
    root = tree_root(node_reader(session), head.seq).hex()
    checkpoint = sign_checkpoint(key, seq=head.seq, head_hash=head.hash, event_count=head.seq, signed_at=now,
                                 number=number, prev_checkpoint_hash=previous_hash, tree_size=head.seq, root_hash=root)
    session.execute(insert(AuditCheckpoint.__table__), [checkpoint])
    return checkpoint


def load_checkpoints(session: Session | Connection) -> list[dict[str, Any]]:
    rows = session.execute(select(*(AuditCheckpoint.__table__.c[f] for f in _CHECKPOINT_FIELDS))
                           .order_by(AuditCheckpoint.id)).mappings().all()
    return [dict(row) for row in rows]


def verify_log_with_checkpoints(session: Session, public_key: PublicKeys | None, *, batch: int = 5000,
                                archive_dir: Path | None = None, workers: int = 1,
                                event_key: bytes | None = None, outside: Sequence[Mapping[str, Any]] | None = None,
                                unsealed_after_seconds: float | None = None,
                                now: datetime | None = None) -> IntegrityReport:
    """The live chain (from the last archive on) against every checkpoint.

    With ``archive_dir``, the archive files first: their own chain of digests,
    the database's archive records against them, their events as one chain from
    the genesis, and the checkpoints of archived events against those events;
    then the live log must go on from the archive's last event. ``workers`` > 1
    walks the live chain in that many processes (audit/parallel.py; the CLI does).
    ``event_key`` (``AuditLog.event_key``) checks each event's MAC; without it the
    report says ``macs_checked`` False.

    ``outside``: checkpoints from a copy kept outside the database (the
    checkpoint file, an auditor's download). They count as the database's own
    do (a head they sign that the log no longer has is ``truncated`` or
    ``rewritten``), and each must still be in the database (else
    ``checkpoint_missing``). The chain of checkpoints, all of them together,
    must hold. With ``unsealed_after_seconds``, the report says whether events
    after the newest checkpoint have waited longer than that (``sealed``).
    """
    own = load_checkpoints(session)
    outside = list(outside or [])
    ordered = in_chain_order([*own, *outside])
    start_seq, start_hash = live_chain_start(session)
    marks = sorted_checkpoints(ordered)
    failed = signature_failure(marks, public_key, start_seq=start_seq, start_hash=start_hash)
    if failed:
        return dataclasses.replace(failed, outside_checkpoints=len(outside))
    broken_chain = checkpoint_chain_problem(ordered)
    if broken_chain:
        seq, kind, message = broken_chain
        return IntegrityReport(ChainReport(False, 0, start_seq - 1, start_hash, seq, message, kind), 0, None,
                               outside_checkpoints=len(outside))
    if archive_dir is not None:
        archive_broken = _archive_problem(session, archive_dir, marks, start_seq=start_seq, start_hash=start_hash)
        if archive_broken:
            return archive_broken
    chain = _walk_live_chain(session, start_seq=start_seq, start_hash=start_hash, batch=batch, workers=workers,
                             event_key=event_key)
    # The walked chain vouches for the stored hashes up to its head.
    wanted = [int(c["seq"]) for c in marks if start_seq <= int(c["seq"]) <= chain.head_seq]
    hashes = {seq: hash_ for seq, hash_ in session.execute(
        select(AuditEvent.seq, AuditEvent.hash).where(AuditEvent.seq.in_(wanted)))} if wanted else {}
    report = with_mac_verdict(hold_against_checkpoints(chain, marks, hashes, start_seq=start_seq),
                              macs_checked=event_key is not None)
    report = dataclasses.replace(report, outside_checkpoints=len(outside))
    if not report.ok:
        return report
    report = _tree_and_outside_copies(session, report, marks, own, outside)
    if not report.ok:
        return report
    if unsealed_after_seconds is not None:
        report = _sealing(session, report, covered=max((int(c["seq"]) for c in marks), default=0),
                          bound=unsealed_after_seconds, now=now or datetime.now(timezone.utc))
    return report


def _tree_and_outside_copies(session: Session, report: IntegrityReport, marks: list[Mapping[str, Any]],
                             own: list[dict[str, Any]], outside: list[Mapping[str, Any]]) -> IntegrityReport:
    """After the walk: the Merkle tree each checkpoint signed, then every outside checkpoint still inside."""
    report = _tree_against_checkpoints(session, report, marks)
    return _outside_kept_inside(report, own, outside) if report.ok else report


def _archive_problem(session: Session, archive_dir: Path, marks: list[Mapping[str, Any]], *, start_seq: int,
                     start_hash: str) -> IntegrityReport | None:
    """The archive files against themselves and the database's records, the live log
    going on from their last event, and the checkpoints of archived events; None if all hold."""
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
    old_marks = [c for c in marks if int(c["seq"]) < start_seq]
    hashes = archived_hashes(archive_dir, {int(c["seq"]) for c in old_marks})
    for mark in old_marks:
        if hashes.get(int(mark["seq"])) != mark["head_hash"]:
            chain = ChainReport(False, archived.chain.events_checked, archived.chain.head_seq,
                                archived.chain.head_hash, int(mark["seq"]),
                                f"archived event {mark['seq']} has another hash than its signed checkpoint",
                                "rewritten")
            return IntegrityReport(chain, 0, None)
    return None


def _walk_live_chain(session: Session, *, start_seq: int, start_hash: str, batch: int, workers: int,
                     event_key: bytes | None) -> ChainReport:
    """Recompute the live chain from ``start_seq``: in this process, or in ``workers`` (audit/parallel.py)."""
    if workers <= 1:
        quick = sqlite_walk(session.connection(), after_seq=start_seq - 1, start_seq=start_seq,
                            start_hash=start_hash, mac_key=event_key, batch=batch)
        # None: PostgreSQL, or an SQLite that cannot encode the events itself.
        return quick if quick is not None else verify_rows(event_tuples(session, after_seq=start_seq - 1, batch=batch),
                                                           start_seq=start_seq, start_hash=start_hash, mac_key=event_key)
    return verify_parts(database_url(session.get_bind()), start_seq=start_seq, start_hash=start_hash,
                        head_seq=head_seq(session), workers=workers, mac_key=event_key)


def _outside_kept_inside(report: IntegrityReport, own: list[dict[str, Any]],
                         outside: list[Mapping[str, Any]]) -> IntegrityReport:
    """Every checkpoint of the outside copy must still be in the database (else ``checkpoint_missing``)."""
    kept = {c["signature"] for c in own}
    removed = [c for c in in_chain_order(outside) if c["signature"] not in kept]
    if not removed:
        return report
    gone = removed[0]
    label = f"checkpoint {gone['number']}" if is_chained(gone) else "a checkpoint"
    chain = dataclasses.replace(report.chain, ok=False, first_bad_seq=int(gone["seq"]), kind="checkpoint_missing",
                                problem=f"{label} at event {gone['seq']} (signed {gone['signed_at']}) is in the "
                                        f"outside copy but not in the database: {len(removed)} checkpoints "
                                        "were deleted there")
    return dataclasses.replace(report, chain=chain)


def _tree_against_checkpoints(session: Session, report: IntegrityReport,
                              marks: list[Mapping[str, Any]]) -> IntegrityReport:
    """Each tree-signing checkpoint's root recomputed from the stored Merkle tree:
    the proofs the API serves come from that tree, so a node changed, a leaf
    dropped or a tree grown from another history shows here, at the checkpoint."""
    read = node_reader(session)
    for mark in marks:
        if not has_tree(mark):
            continue
        size = int(mark["tree_size"])
        try:
            root = tree_root(read, size).hex()
        except KeyError as exc:
            root = f"missing: {exc}"
        if root != mark["root_hash"]:
            chain = dataclasses.replace(report.chain, ok=False, first_bad_seq=size, kind="tree_mismatch",
                                        problem=f"the Merkle tree of the first {size} events does not have the root "
                                                f"the checkpoint signed at {mark['signed_at']} ({root})")
            return dataclasses.replace(report, chain=chain)
    return report


def _sealing(session: Session, report: IntegrityReport, *, covered: int, bound: float, now: datetime) -> IntegrityReport:
    """Whether the events after the newest checkpoint (``covered``) are younger
    than ``bound`` seconds; events with no MAC (from before it) past the newest
    checkpoint are vouched for by nothing, whatever their age."""
    chain = report.chain
    if chain.head_seq <= covered:
        return report
    first = max(covered + 1, chain.head_seq - chain.events_checked + 1)
    at = session.execute(select(AuditEvent.at).where(AuditEvent.seq == first)).scalar_one()
    at = at.replace(tzinfo=timezone.utc) if at.tzinfo is None else at
    unkeyed_tail = report.macs_checked and chain.first_keyed_seq is None and chain.last_unkeyed_seq is not None
    if (now - at).total_seconds() <= bound and not unkeyed_tail:
        return report
    return dataclasses.replace(report, sealed=False, unsealed_events=chain.head_seq - covered,
                               unsealed_since=format_time(at))
