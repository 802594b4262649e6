"""SQLite: a business transaction that writes a batch of audit events chains them
itself (audit/sequencing.py: append_sequenced) under the one write lock it holds
anyway; a few are left pending for the sequencer (the default log, last test; the
others chain every write, ``chain_in_place_from=1``, to hold that path). Atomic with the change,
in the order written, nothing left in audit_pending; events left pending before
(the sequencer's path) go first; the cached right edge of the tree never outlives
a rollback or another process's appends; a chain and tree that disagree leave the
events pending instead of failing the business change. On PostgreSQL the sequencer
does this (tests/integration/audit/test_sequencer.py)."""

from __future__ import annotations

import shutil

import pytest
import sqlalchemy as sa

from audit.chain import leaf_bytes
from audit.checkpoint_store import verify_log_with_checkpoints, write_checkpoint
from audit.merkle import leaf_hash, root_of
from audit.models import AuditEvent, AuditMerkleNode
from audit.sequencing import pending_count, tree_size
from audit.store import CHAIN_IN_PLACE_FROM, AuditLog, SystemActor, event_rows
from gateway.db import Database
from gateway.timeutil import utc_now
from test_archive import keys  # noqa: F401 (fixture: the checkpoint key pair)

SUBJECT_KEY = b"q" * 32
AUDIT = AuditLog(SUBJECT_KEY, chain_in_place_from=1)
ACTOR = SystemActor(sub="tester")


@pytest.fixture
def db(sqlite_template, tmp_path):
    path = tmp_path / "gateway.db"
    shutil.copy(sqlite_template, path)
    database = Database(f"sqlite:///{path}")
    yield database
    database.dispose()


def record(db, marks, audit=AUDIT):
    for mark in marks:
        with db.transaction() as session:
            audit.record(session, action="test.event", outcome="ok", actor=ACTOR, details={"i": mark})


def counts(db):
    with db.reading() as session:
        return (session.scalar(sa.select(sa.func.count()).select_from(AuditEvent)), pending_count(session))


def marks(db):
    with db.reading() as session:
        return [(r["seq"], r["details"]["i"]) for r in event_rows(session)]


def assert_whole(db, keys, events):
    """The chain verifies (hashes, MACs) against a checkpoint signed now, whose root is
    recomputed from the stored tree; the tree's leaves are the events' contents."""
    signing, public = keys
    with db.transaction() as session:
        checkpoint = write_checkpoint(session, signing, now=utc_now())
    with db.reading() as session:
        report = verify_log_with_checkpoints(session, public, event_key=AUDIT.event_key)
        leaves = [leaf_hash(leaf_bytes(r)) for r in event_rows(session)]
        stored = [bytes.fromhex(h) for h in session.scalars(
            sa.select(AuditMerkleNode.hash).where(AuditMerkleNode.level == 0).order_by(AuditMerkleNode.index))]
    assert report.ok, report
    assert report.chain.events_checked == events and report.chain.mac_problem is None
    assert stored == leaves and checkpoint["root_hash"] == root_of(leaves).hex()


def test_an_event_is_chained_in_its_transaction_and_rolls_back_with_it(db, keys):
    record(db, [0, 1])
    assert counts(db) == (2, 0)  # in the chain at commit: nothing pending, no sequencer
    with pytest.raises(RuntimeError):
        with db.transaction() as session:
            AUDIT.record(session, action="test.event", outcome="ok", details={"i": "lost with its change"})
            with db.engine.connect() as other:  # not visible outside before the commit
                assert other.scalar(sa.select(sa.func.count()).select_from(AuditEvent)) == 2
            raise RuntimeError("the business change failed")
    assert counts(db) == (2, 0)
    record(db, [2])  # chained onto the committed head, not the rolled-back one this process saw
    assert marks(db) == [(1, 0), (2, 1), (3, 2)]
    assert_whole(db, keys, 3)


def test_events_keep_their_order_within_and_across_transactions(db, keys):
    with db.transaction() as session:
        AUDIT.record(session, action="test.event", outcome="ok", details={"i": 0})
        AUDIT.record_many(session, [{"action": "test.event", "outcome": "ok", "actor": ACTOR, "details": {"i": i},
                                     "subject_id_number": "330102198703151157"} for i in range(1, 40)])
        AUDIT.record(session, action="test.event", outcome="ok", details={"i": 40})
    with db.connection_transaction() as connection:  # the Core path (the outbox writer's) as well
        AUDIT.record_many(connection, [{"action": "test.event", "outcome": "ok", "details": {"i": i}}
                                       for i in range(41, 45)])
    assert marks(db) == [(i + 1, i) for i in range(45)]
    assert counts(db) == (45, 0)
    with db.reading() as session:
        masked = session.scalar(sa.select(AuditEvent.subject_masked).where(AuditEvent.seq == 2))
        row = session.execute(sa.text("SELECT * FROM audit_events WHERE seq = 2")).one()
    assert masked == "3301**********1157" and "330102198703151157" not in " ".join(str(v) for v in row)
    assert_whole(db, keys, 45)


def test_events_left_pending_are_chained_first_in_their_order(db, keys):
    """Written by the sequencer's path (a gateway of the version before, or
    ``always_pending``): the next business transaction chains them before its own."""
    record(db, [0])
    record(db, [1, 2, 3], audit=AuditLog(SUBJECT_KEY, always_pending=True))
    assert counts(db) == (1, 3)
    with db.transaction() as session:
        AUDIT.record_many(session, [{"action": "test.event", "outcome": "ok", "details": {"i": i}} for i in (4, 5)])
    assert counts(db) == (6, 0)
    assert marks(db) == [(i + 1, i) for i in range(6)]
    assert_whole(db, keys, 6)


def test_another_process_appending_in_between_is_seen(db, keys):
    """Each process keeps the tree's right edge after its own last append; another's
    appends move the stored head away from it, so it is read again, not reused."""
    other = AuditLog(SUBJECT_KEY, chain_in_place_from=1)  # its own cache, as another process has
    record(db, [0, 1, 2])
    record(db, [3, 4], audit=other)
    record(db, [5])
    record(db, [6, 7, 8, 9], audit=other)
    record(db, [10])
    assert marks(db) == [(i + 1, i) for i in range(11)]
    assert_whole(db, keys, 11)


def test_a_chain_and_tree_that_disagree_leave_the_events_pending_not_the_change_undone(db, caplog):
    """As the sequencer does with a broken log: nothing chained onto it. The business
    change still commits with its event, pending, and the error is logged."""
    record(db, [0, 1])
    with db.engine.begin() as conn:  # a leaf beyond the chain's end: as if events were deleted
        conn.execute(sa.insert(AuditMerkleNode.__table__).values(level=0, idx=2, hash="00" * 32))
        conn.execute(sa.text("CREATE TABLE business_change (x INTEGER)"))
    with db.transaction() as session:
        session.execute(sa.text("INSERT INTO business_change VALUES (1)"))
        AUDIT.record(session, action="test.event", outcome="ok", details={"i": 2})
    assert counts(db) == (2, 1)
    assert "the stored chain and tree disagree" in caplog.text
    with db.reading() as session:
        assert session.execute(sa.text("SELECT count(*) FROM business_change")).scalar_one() == 1
        assert tree_size(session) == 3
        with pytest.raises(RuntimeError, match="events were deleted"):
            AUDIT.integrate_pending(session)


def test_by_default_a_few_events_wait_for_the_sequencer_and_a_batch_is_chained_after_them(db, keys):
    """A transaction of a few events commits one small row each; a batch file's many
    are chained in their transaction, the ones waiting first, in their order."""
    audit = AuditLog(SUBJECT_KEY)
    record(db, [0, 1], audit=audit)
    with db.transaction() as session:
        audit.record_many(session, [{"action": "test.event", "outcome": "ok", "details": {"i": 2}},
                                    {"action": "test.event", "outcome": "ok", "details": {"i": 3}}])
    assert counts(db) == (0, 4)
    batch = list(range(4, 4 + CHAIN_IN_PLACE_FROM))
    with db.transaction() as session:
        audit.record_many(session, [{"action": "test.event", "outcome": "ok", "actor": ACTOR, "details": {"i": i}}
                                    for i in batch])
    assert counts(db) == (4 + len(batch), 0)
    assert marks(db) == [(i + 1, i) for i in range(4 + len(batch))]
    assert_whole(db, keys, 4 + len(batch))
