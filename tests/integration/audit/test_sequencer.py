"""The audit sequencer on SQLite and PostgreSQL: events written unsequenced and
atomic with their transaction (on SQLite the gateway chains them in the business
transaction instead, tests/integration/audit/test_sqlite_append.py; here the log
writes every event pending, as on PostgreSQL, so the sequencer's path, which SQLite
still takes for events left pending, is held on both); nothing lost when the sequencer dies mid-batch;
two sequencers never both integrate; the Merkle proofs built from the stored tree
verify against the signed checkpoints and fail on a changed event or a wrong size."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import pytest
import sqlalchemy as sa

from audit.checkpoint_store import verify_log_with_checkpoints, write_checkpoint
from audit.merkle import leaf_hash, root_of
from audit.models import AuditEvent, AuditMerkleNode, AuditPending
from audit.proofs import check_consistency, check_inclusion, consistency_proof, inclusion_proof
from audit.chain import leaf_bytes
from audit.sequencing import pending_count, tree_size
from audit.store import AuditLog, SystemActor, event_rows
from gateway.auditing.sequencer import LEASE_NAME, AuditSequencer
from gateway.db import Database
from gateway.deliveries.models import ChannelLease
from gateway.timeutil import utc_now
from test_archive import db, keys  # noqa: F401 (fixtures: a Database on the test's URL, the checkpoint key pair)

SUBJECT_KEY = b"s" * 32
AUDIT = AuditLog(SUBJECT_KEY, always_pending=True)
ACTOR = SystemActor(sub="tester")
ROOT = Path(__file__).resolve().parents[3]


def record(db, n, start=0):
    for i in range(start, start + n):
        with db.transaction() as session:
            AUDIT.record(session, action="test.event", outcome="ok", actor=ACTOR, details={"i": i})


def integrate(db):
    with db.transaction() as session:
        return AUDIT.integrate_pending(session)


def counts(db):
    with db.reading() as session:
        return (session.scalar(sa.select(sa.func.count()).select_from(AuditEvent)), pending_count(session))


def verified(db, public_key=None):
    with db.reading() as session:
        return verify_log_with_checkpoints(session, public_key, event_key=AUDIT.event_key)


def test_an_event_waits_unsequenced_and_rolls_back_with_its_transaction(db):
    record(db, 3)
    with pytest.raises(RuntimeError):
        with db.transaction() as session:
            AUDIT.record(session, action="test.event", outcome="ok", details={"i": "lost with its change"})
            raise RuntimeError("the business change failed")
    assert counts(db) == (0, 3)
    assert integrate(db) == 3 and counts(db) == (3, 0)
    with db.reading() as session:
        rows = list(event_rows(session))
        stored = [bytes.fromhex(h) for h in session.scalars(
            sa.select(AuditMerkleNode.hash).where(AuditMerkleNode.level == 0).order_by(AuditMerkleNode.index))]
    assert [r["details"]["i"] for r in rows] == [0, 1, 2]  # in the order written
    assert stored == [leaf_hash(leaf_bytes(r)) for r in rows]  # each leaf is the event's content
    report = verified(db)
    assert report.ok and report.chain.events_checked == 3 and report.chain.mac_problem is None


def test_no_event_is_lost_when_the_sequencer_dies_mid_batch(db, database_url):
    """A process assigns seqs, writes the events and the tree, and is killed
    before its commit: its transaction is gone, the events are still pending,
    and the next holder integrates every one of them once."""
    record(db, 7)
    script = textwrap.dedent(f"""
        import os, sys
        sys.path.insert(0, {str(ROOT)!r})
        import audit.sequencing as sequencing
        from audit.store import AuditLog
        from gateway.db import Database

        def die(session, ids):
            session.flush() if hasattr(session, "flush") else None
            written = session.execute(sequencing.select(sequencing.func.count()).select_from(
                sequencing.AuditEvent.__table__)).scalar_one()
            print("assigned", len(ids), "written", written, flush=True)
            os._exit(9)  # killed between assigning and committing

        sequencing._delete_integrated = die
        db = Database({database_url!r})
        with db.transaction() as session:
            AuditLog({SUBJECT_KEY!r}).integrate_pending(session)
    """)
    died = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert died.returncode == 9, died.stderr
    assert "assigned 7 written 7" in died.stdout  # it got as far as writing all seven in its transaction
    assert counts(db) == (0, 7)
    with db.reading() as session:
        assert tree_size(session) == 0
    record(db, 2, start=7)
    assert integrate(db) == 9
    assert counts(db) == (9, 0)
    with db.reading() as session:
        assert [r["details"]["i"] for r in event_rows(session)] == list(range(9))
    assert verified(db).ok


def test_two_integrations_racing_never_both_extend_the_chain(db):
    """Writers and two integrating threads at once: every event once, seqs gapless, the chain whole."""
    errors: list[Exception] = []
    stop = threading.Event()

    def writer(offset):
        try:
            record(db, 25, start=offset)
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)

    def integrator():
        try:
            while not stop.is_set():
                integrate(db)
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)

    writers = [threading.Thread(target=writer, args=(100 * k,)) for k in range(4)]
    integrators = [threading.Thread(target=integrator) for _ in range(2)]
    for t in writers + integrators:
        t.start()
    for t in writers:
        t.join(120)
    stop.set()
    for t in integrators:
        t.join(120)
    assert not errors
    integrate(db)
    with db.reading() as session:
        seqs = list(session.scalars(sa.select(AuditEvent.seq).order_by(AuditEvent.seq)))
        marks = sorted(r["details"]["i"] for r in event_rows(session))
        assert tree_size(session) == 100
    assert seqs == list(range(1, 101))
    assert marks == sorted(100 * k + i for k in range(4) for i in range(25))
    assert verified(db).ok


def test_one_sequencer_holds_the_lease_and_another_takes_over_when_it_dies(db):
    first = AuditSequencer(db, AUDIT, interval_seconds=0.01, lease_seconds=1.0, holder="first")
    second = AuditSequencer(db, AUDIT, interval_seconds=0.01, lease_seconds=1.0, holder="second")
    first.start()
    second.start()
    try:
        record(db, 20)
        deadline = utc_now().timestamp() + 20
        while counts(db) != (20, 0) and utc_now().timestamp() < deadline:
            threading.Event().wait(0.02)
        assert counts(db) == (20, 0)
        assert sorted([first.integrated, second.integrated]) == [0, 20]  # one of them, never both
        holder, idle = (first, second) if first.integrated else (second, first)
        assert holder.holds_lease and not idle.holds_lease
        holder._stop.set()  # dies: stops renewing, never releases
        holder._thread.join(5)
        holder._held_until = 0.0
        record(db, 5, start=20)
        deadline = utc_now().timestamp() + 20
        while counts(db) != (25, 0) and utc_now().timestamp() < deadline:
            threading.Event().wait(0.05)
        assert counts(db) == (25, 0) and idle.integrated == 5  # after the lease lapsed
        with db.reading() as session:
            assert session.get(ChannelLease, LEASE_NAME).holder == idle.holder
    finally:
        first.stop()
        second.stop()
    assert verified(db).ok


def test_a_clean_stop_integrates_what_is_left_pending(db):
    """A worker stopping (SIGTERM, the end of the demo) leaves no event of its own
    pending: the holder's last pass integrates them before the lease is handed back."""
    sequencer = AuditSequencer(db, AUDIT, interval_seconds=60.0, holder="stopping")
    sequencer.start()
    deadline = utc_now().timestamp() + 20
    while not sequencer.holds_lease and utc_now().timestamp() < deadline:
        threading.Event().wait(0.02)
    assert sequencer.holds_lease
    record(db, 7)  # written after its first pass, which then sleeps a minute
    assert counts(db) == (0, 7)
    sequencer.stop()
    assert counts(db) == (7, 0) and sequencer.integrated == 7
    with db.reading() as session:
        assert session.get(ChannelLease, LEASE_NAME) is None  # handed back at once
    assert verified(db).ok


def test_proofs_verify_against_signed_checkpoints_and_fail_on_a_change(db, keys):
    signing, public = keys
    record(db, 5)
    integrate(db)
    with db.transaction() as session:
        small = write_checkpoint(session, signing, now=utc_now())
    record(db, 8, start=5)
    integrate(db)
    with db.transaction() as session:
        large = write_checkpoint(session, signing, now=utc_now())
    assert (small["tree_size"], large["tree_size"]) == (5, 13)
    with db.reading() as session:
        leaves = [leaf_hash(leaf_bytes(r)) for r in event_rows(session)]
        assert large["root_hash"] == root_of(leaves).hex() and small["root_hash"] == root_of(leaves[:5]).hex()
        for seq in range(1, 14):
            proof = inclusion_proof(session, seq)
            assert proof["tree_size"] == 13 and proof["checkpoint"]["root_hash"] == large["root_hash"]
            assert check_inclusion(proof, public) == (True, f"event {seq} is in the signed tree of 13 events "
                                                            f"(root {large['root_hash']})")
        in_small = inclusion_proof(session, 3, 5)
        consistent = consistency_proof(session, 5, 13)
        unsigned = consistency_proof(session, 4, 13)
    assert check_inclusion(in_small, public)[0]
    assert check_consistency(consistent, public)[0]

    changed = {**in_small, "event": {**in_small["event"], "outcome": "refused"}}
    assert check_inclusion(changed, public) == (False, "event 3: its fields do not hash to the proof's leaf "
                                                       "(the event was changed)")
    releafed = {**changed, "leaf_hash": leaf_hash(leaf_bytes(changed["event"])).hex()}
    assert not check_inclusion(releafed, public)[0]  # a leaf of its own does not reach the signed root
    assert not check_inclusion({**in_small, "tree_size": 13}, public)[0]  # wrong size for this path and root
    assert not check_consistency({**consistent, "from": 6}, public)[0]
    resized = {**consistent, "to": 12, "to_checkpoint": None}
    assert not check_consistency(resized, public)[0]
    ok, message = check_consistency(unsigned, public)
    assert not ok and "no checkpoint signs a tree of 4 events" in message


def test_a_changed_tree_node_is_caught_at_the_checkpoint_that_signed_the_root(db, keys):
    """Verify recomputes each signed root from the stored subtrees it is made of
    (for 6 events: leaves 0-3 and 4-5); a changed node inside one of them shows in
    the proofs that use it, which then fail against the signed root (above)."""
    signing, public = keys
    record(db, 6)
    integrate(db)
    with db.transaction() as session:
        write_checkpoint(session, signing, now=utc_now())
    assert verified(db, public).ok
    with db.engine.begin() as conn:
        conn.execute(sa.update(AuditMerkleNode.__table__).where(AuditMerkleNode.level == 1, AuditMerkleNode.index == 2)
                     .values(hash="00" * 32))
    report = verified(db, public)
    assert (report.ok, report.chain.kind, report.chain.first_bad_seq) == (False, "tree_mismatch", 6)


def test_pending_rows_carry_no_identity_number_in_clear(db):
    with db.transaction() as session:
        AUDIT.record(session, action="t", outcome="ok", subject_id_number="330102198703151157")
    with db.reading() as session:
        row = session.execute(sa.select(*AuditPending.__table__.c)).one()
    assert "330102198703151157" not in " ".join(str(v) for v in row)


@pytest.mark.postgres_only
def test_sequencers_of_two_schemas_in_one_database_never_wait_on_each_other(db, database_url):
    """The chain's lock is the schema's own (its tree table), not a database-wide
    advisory key: an integration holding it in one schema does not hold up another
    gateway's (or test run's) sequencer in another schema of the same database."""
    import uuid

    from gateway import migrate

    server = database_url.split("?")[0]
    other = f"gw_seq_other_{uuid.uuid4().hex[:8]}"
    admin = sa.create_engine(server, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE SCHEMA "{other}"'))
    other_db = None
    try:
        other_url = f"{server}?options=-csearch_path%3D{other}"
        migrate.upgrade(other_url)
        other_db = Database(other_url)
        record(db, 3)
        record(other_db, 2)
        with db.transaction() as holding:
            assert AUDIT.integrate_pending(holding) == 3  # the lock held until this transaction ends
            with other_db.transaction() as session:
                session.execute(sa.text("SET LOCAL lock_timeout = '5s'"))  # fails, not hangs, if it waits
                assert AUDIT.integrate_pending(session) == 2
        assert counts(db) == (3, 0) and counts(other_db) == (2, 0)
    finally:
        if other_db is not None:
            other_db.dispose()
        with admin.connect() as conn:
            conn.execute(sa.text(f'DROP SCHEMA "{other}" CASCADE'))
        admin.dispose()


def test_the_app_runs_a_sequencer_beside_its_worker(app):
    """On both databases (on SQLite for small transactions' events: test_sqlite_append.py)."""
    sequencer = app.extensions.get("audit_sequencer")
    assert isinstance(sequencer, AuditSequencer) and sequencer in app.extensions["worker"]._companions
