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

On SQLite a write transaction already holds the database's one write lock, so
``append_sequenced`` (below) chains a batch of events (audit/store.py:
``CHAIN_IN_PLACE_FROM``) inside the business transaction, after any events still
pending (those of smaller transactions, which the sequencer chains otherwise),
which ``integrate_pending`` integrates first. The same chain, MACs and tree as
the sequencer's.
"""

from __future__ import annotations

import operator
from typing import Any, Callable

from sqlalchemy import Connection, and_, delete, func, insert, or_, select, text
from sqlalchemy.orm import Session

from audit.chain import (GENESIS_HASH, LEAF_FIELDS, ROW_FIELDS, CanonicalJSONText, content_hash, event_hash,
                         event_mac_function, row_leaf_bytes)
from audit.merkle import appended_nodes, leaf_hash, right_edge
from audit.models import AuditEvent, AuditMerkleNode, AuditPending
from audit.store import APPEND_EVENTS, Content, event_tuples

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


class ChainStateError(RuntimeError):
    """The stored chain and tree do not agree (events deleted, or gaps): nothing is
    integrated onto them; the events stay pending and `gateway audit verify` says more."""


def node_reader(session: Session | Connection) -> Any:
    """A NodeReader (audit/merkle.py) over the stored tree, one indexed read a node."""
    def read(level: int, index: int) -> bytes:
        found = session.execute(select(_NODE.c.hash).where(_NODE.c.level == level, _NODE.c.idx == index)).scalar()
        if found is None:
            raise KeyError(f"Merkle node ({level}, {index}) is not stored")
        return bytes.fromhex(found)
    return read


def _edge_nodes(session: Session | Connection, size: int) -> dict[tuple[int, int], bytes]:
    """The right edge of the tree of ``size`` leaves (``appended_nodes`` reads
    nothing else), read in one query."""
    edge = right_edge(size)
    if not edge:
        return {}
    rows = session.execute(select(_NODE.c.level, _NODE.c.idx, _NODE.c.hash).where(
        or_(*(and_(_NODE.c.level == level, _NODE.c.idx == index) for level, index in edge))))
    return {(row.level, row.idx): bytes.fromhex(row.hash) for row in rows}


def _held_reader(held: dict[tuple[int, int], bytes]) -> Any:
    """A NodeReader over the nodes in ``held`` only."""
    def read(level: int, index: int) -> bytes:
        found = held.get((level, index))
        if found is None:
            raise KeyError(f"Merkle node ({level}, {index}) is not stored")
        return found
    return read


def _edge_reader(session: Session | Connection, size: int) -> Any:
    """A NodeReader holding the right edge of the tree of ``size`` leaves, read in one query."""
    return _held_reader(_edge_nodes(session, size))


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
        raise ChainStateError(f"the audit Merkle tree has {size} leaves but the chain ends at event {head}: events "
                           "were deleted; run `gateway audit verify`")
    missing = [leaf_hash(row_leaf_bytes(row)) for row in event_tuples(session, after_seq=size, up_to_seq=head)]
    if len(missing) != head - size:
        raise ChainStateError(f"the audit chain has gaps between events {size + 1} and {head}; run `gateway audit verify`")
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


# --- SQLite: events given their places in the business transaction itself ---------
# One query for the chain's head, whether anything waits pending and the tree's size; the inserts
# through the driver's own cursor (SQLAlchemy's parameter handling of thousands of
# rows costs more than hashing them).
_SQLITE_HEAD = ("SELECT (SELECT seq FROM audit_events ORDER BY seq DESC LIMIT 1), "
                "(SELECT hash FROM audit_events ORDER BY seq DESC LIMIT 1), EXISTS (SELECT 1 FROM audit_pending), "
                "(SELECT max(idx) FROM audit_merkle_nodes WHERE level = 0)")
_SQLITE_INSERT_EVENTS = (f"INSERT INTO audit_events ({', '.join(ROW_FIELDS)}) "
                         f"VALUES ({', '.join('?' * len(ROW_FIELDS))})")
_SQLITE_INSERT_NODES = "INSERT INTO audit_merkle_nodes (level, idx, hash) VALUES (?, ?, ?)"
_LEAF_AT = LEAF_FIELDS.index("at")
# The stored row's content columns (ROW_FIELDS between ``at`` and ``prev_hash``) from LEAF_FIELDS order.
_ROW_CONTENT = operator.itemgetter(*(LEAF_FIELDS.index(name) for name in ROW_FIELDS[2:ROW_FIELDS.index("prev_hash")]))
# What this process last appended to a database: the head (seq, hash) and the tree's
# right edge after it; good while the stored head is still that one (checked each time).
Tail = tuple[int, str, dict[tuple[int, int], bytes]]


def _driver_cursor(connection: Connection) -> Any:
    dbapi_connection = connection.connection.dbapi_connection
    if dbapi_connection is None:  # only after the pool invalidated it, never inside a transaction
        raise RuntimeError("the audit log's database connection was invalidated mid-transaction")
    return dbapi_connection.cursor()


def _sqlite_head(connection: Connection) -> tuple[Any, ...]:
    """The head's seq and hash (None if no event), whether any event is pending, the tree's last leaf index."""
    if not connection.in_transaction():  # through SQLAlchemy, which begins the transaction as for any statement
        return tuple(connection.exec_driver_sql(_SQLITE_HEAD).one())
    cursor = _driver_cursor(connection)
    try:
        return tuple(cursor.execute(_SQLITE_HEAD).fetchone())
    finally:
        cursor.close()


def append_sequenced(connection: Connection, event_key: bytes, mac_of: Callable[[str], str],
                     contents: list[Content], tails: dict[str, Tail]) -> None:
    """Chain, MAC and add to the tree the events in ``contents``, in this order, in
    the caller's write transaction, whose lock on SQLite's one writer serialises
    appends as the sequencer's lock does: nothing goes to ``audit_pending``. Events
    left pending before (the sequencer's path) are integrated first, in order.

    The tree must end where the chain does, as for the sequencer (ChainStateError
    if it cannot: the caller leaves the events pending). Its right edge is taken
    from ``tails`` when the stored head is the one this process last appended (a
    head hash fixes the whole chain, so the leaves and the edge too), else read."""
    seq, prev_hash, pending, last_leaf = _sqlite_head(connection)
    if pending:
        integrate_pending(connection, event_key)
        seq, prev_hash, _, last_leaf = _sqlite_head(connection)
    if seq is None:
        seq, prev_hash = 0, GENESIS_HASH
    if (-1 if last_leaf is None else last_leaf) + 1 != seq:
        _tree_up_to(connection, node_reader(connection), seq)  # caught up, or ChainStateError
    database = connection.engine.url.database or ""
    tail = tails.get(database)
    edge = tail[2] if tail is not None and tail[0] == seq and tail[1] == prev_hash else _edge_nodes(connection, seq)
    size, rows, leaves = seq, [], []
    for values, encoded, leaf in contents:
        seq += 1
        this_hash = content_hash(encoded, seq, prev_hash)
        at = values[_LEAF_AT]  # stored as SQLAlchemy stores a DateTime on SQLite: 'YYYY-MM-DD HH:MM:SS.ffffff'
        rows.append((seq, at[:10] + " " + at[11:26], *_ROW_CONTENT(values), prev_hash, this_hash, mac_of(this_hash)))
        leaves.append(leaf)
        prev_hash = this_hash
    nodes = appended_nodes(_held_reader(edge), size, leaves)
    cursor = _driver_cursor(connection)
    try:
        cursor.executemany(_SQLITE_INSERT_EVENTS, rows)
        cursor.executemany(_SQLITE_INSERT_NODES, [(level, index, digest.hex()) for level, index, digest in nodes])
    finally:
        cursor.close()
    made = {**edge, **{(level, index): digest for level, index, digest in nodes}}
    tails[database] = (seq, prev_hash, {place: made[place] for place in right_edge(seq)})
