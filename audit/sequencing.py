"""The sequencer's one step: give pending events their places (Trillian's
sequencer, Tessera's integration), as storage code over the caller's session.

Business transactions write events to ``audit_pending`` without touching the
chain (audit/store.py). ``integrate_pending`` takes the chain's lock (on
PostgreSQL the tree's table locked EXCLUSIVE, which only integrations write and
which readers still read; on SQLite the write lock ``BEGIN IMMEDIATE`` holds),
reads the head, and for the pending events in ``id`` order
assigns ``seq``, extends the hash chain, MACs each hash, adds the leaves to the
Merkle tree (audit/merkle.py), inserts them into ``audit_events`` and deletes
them from ``audit_pending``, all in the caller's transaction. If that
transaction does not commit (the process dies mid-batch) nothing of it stays:
the events are still pending and the next integration takes them. Only the
sequencer takes the lock, so it never holds up a business transaction, and two
integrations (two sequencers, or a reader that integrates before it reads)
never both extend the chain from one head.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection, and_, delete, func, insert, or_, select, text
from sqlalchemy.orm import Session

from audit.chain import GENESIS_HASH, CanonicalJSONText, event_hash, event_mac_function, row_leaf_bytes
from audit.merkle import appended_nodes, leaf_hash, right_edge
from audit.models import AuditEvent, AuditMerkleNode, AuditPending
from audit.store import APPEND_EVENTS, event_tuples

# A lock on the table rather than an advisory lock: it belongs to this schema, so
# gateways (or test runs) sharing one database in several schemas never wait on
# one another's sequencers. EXCLUSIVE lets readers of the tree (proofs,
# checkpoints) go on and holds only other integrations.
_LOCK_CHAIN = text("LOCK TABLE audit_merkle_nodes IN EXCLUSIVE MODE")
_CHAIN_HEAD = select(AuditEvent.seq, AuditEvent.hash).order_by(AuditEvent.seq.desc()).limit(1)
_PENDING_COLUMNS = [c for c in AuditPending.__table__.c]
_PENDING = select(*_PENDING_COLUMNS).order_by(AuditPending.id)
_ANY_PENDING = select(AuditPending.id).limit(1)
_DELETE_PENDING_PG = text("DELETE FROM audit_pending WHERE id = ANY(:ids)")
_NODE = AuditMerkleNode.__table__
_INSERT_NODES = insert(_NODE)
_LAST_LEAF = select(func.max(_NODE.c.idx)).where(_NODE.c.level == 0)
_CONTENT = ("at", "actor_sub", "actor_role", "actor_court", "actor_agency", "action", "outcome", "case_number",
            "subject_hash", "subject_masked", "request_id", "delivery_id")

BATCH = 2000


def node_reader(session: Session | Connection) -> Any:
    """A NodeReader (audit/merkle.py) over the stored tree, one indexed read a node."""
    def read(level: int, index: int) -> bytes:
        found = session.execute(select(_NODE.c.hash).where(_NODE.c.level == level, _NODE.c.idx == index)).scalar()
        if found is None:
            raise KeyError(f"Merkle node ({level}, {index}) is not stored")
        return bytes.fromhex(found)
    return read


def _edge_reader(session: Session | Connection, size: int) -> Any:
    """A NodeReader holding the right edge of the tree of ``size`` leaves, read in
    one query (``appended_nodes`` reads nothing else)."""
    edge = right_edge(size)
    held: dict[tuple[int, int], bytes] = {}
    if edge:
        rows = session.execute(select(_NODE.c.level, _NODE.c.idx, _NODE.c.hash).where(
            or_(*(and_(_NODE.c.level == level, _NODE.c.idx == index) for level, index in edge))))
        held = {(row.level, row.idx): bytes.fromhex(row.hash) for row in rows}

    def read(level: int, index: int) -> bytes:
        found = held.get((level, index))
        if found is None:
            raise KeyError(f"Merkle node ({level}, {index}) is not stored")
        return found
    return read


def pending_count(session: Session | Connection) -> int:
    return session.execute(select(func.count()).select_from(AuditPending.__table__)).scalar_one()


def integrate_pending(session: Session | Connection, event_key: bytes, *, limit: int | None = None,
                      batch: int = BATCH) -> int:
    """Sequence pending events (all, or about ``limit``) in the caller's
    transaction; returns how many. The caller commits."""
    bind = session.get_bind() if isinstance(session, Session) else session
    dialect = bind.dialect.name
    if session.execute(_ANY_PENDING).first() is None:
        return 0  # a reader with nothing to integrate takes no lock (holding up the sequencer through its reads)
    if dialect == "postgresql":
        session.execute(_LOCK_CHAIN)
    append = APPEND_EVENTS["postgresql" if dialect == "postgresql" else "sqlite"]
    mac_of = event_mac_function(event_key)
    read = node_reader(session)  # only to catch the tree up with events written past the sequencer
    total = 0
    while limit is None or total < limit:
        rows = session.execute(_PENDING.limit(batch if limit is None else min(batch, limit - total))).mappings().all()
        if not rows:
            break
        head = session.execute(_CHAIN_HEAD).first()
        seq, prev_hash = (head.seq, head.hash) if head else (0, GENESIS_HASH)
        _tree_up_to(session, read, seq)
        events, leaves = [], []
        for row in rows:
            seq += 1
            fields: dict[str, Any] = {name: row[name] for name in _CONTENT}
            fields["seq"] = seq
            fields["details"] = CanonicalJSONText(row["details"])
            this_hash = event_hash(fields, prev_hash)
            fields.update(prev_hash=prev_hash, hash=this_hash, mac=mac_of(this_hash), details_text=row["details"])
            del fields["details"]
            events.append(fields)
            leaves.append(bytes.fromhex(row["leaf_hash"]))
            prev_hash = this_hash
        size = events[0]["seq"] - 1  # leaf index = seq - 1
        nodes = appended_nodes(_edge_reader(session, size), size, leaves)
        session.execute(append, events)
        session.execute(_INSERT_NODES, [{"level": level, "idx": index, "hash": digest.hex()}
                                        for level, index, digest in nodes])
        _delete_integrated(session, [row["id"] for row in rows])
        total += len(rows)
        if len(rows) < batch:
            break
    return total


def tree_size(session: Session | Connection) -> int:
    """How many leaves the stored tree has."""
    last = session.execute(_LAST_LEAF).scalar()
    return 0 if last is None else last + 1


def _tree_up_to(session: Session | Connection, read: Any, head: int) -> None:
    """Make the tree hold exactly the chain's ``head`` events before extending both.

    Only events written past the sequencer (straight into audit_events by someone
    with database access) leave the chain longer than the tree: their leaves are
    added from their content, so the tree goes on mirroring the chain and the
    sequencer goes on working; the chain's check (their MACs, the checkpoints)
    is what judges them. A tree longer than the chain means events were deleted:
    nothing is integrated onto that, the events stay pending, the error says why."""
    size = tree_size(session)
    if size == head:
        return
    if size > head:
        raise RuntimeError(f"the audit Merkle tree has {size} leaves but the chain ends at event {head}: events "
                           "were deleted; run `gateway audit verify`")
    missing = [leaf_hash(row_leaf_bytes(row)) for row in event_tuples(session, after_seq=size, up_to_seq=head)]
    if len(missing) != head - size:
        raise RuntimeError(f"the audit chain has gaps between events {size + 1} and {head}; run `gateway audit verify`")
    session.execute(_INSERT_NODES, [{"level": level, "idx": index, "hash": digest.hex()}
                                    for level, index, digest in appended_nodes(read, size, missing)])


def _delete_integrated(session: Session | Connection, ids: list[int]) -> None:
    """The last step of a batch (a separate function so a test can kill the process
    just before it, with the batch's events and nodes written and not committed)."""
    if (session.get_bind() if isinstance(session, Session) else session).dialect.name == "postgresql":
        # One statement text whatever the batch's size (an IN list of n ids is a new
        # text each time, which the driver parses again: a quarter of the sequencer's CPU).
        session.execute(_DELETE_PENDING_PG, {"ids": ids})
    else:
        session.execute(delete(AuditPending.__table__).where(AuditPending.__table__.c.id.in_(ids)))
