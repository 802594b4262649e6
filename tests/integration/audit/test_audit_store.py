"""The audit log in the database: append-only, never forked under concurrent
writers, and `gateway audit verify` naming the first bad event."""

import threading

import pytest
import sqlalchemy as sa
from click.testing import CliRunner

from audit.models import AuditEvent
from audit.store import AuditLog, SystemActor, verify_log
from gateway.cli import main
from gateway.db import Database


@pytest.fixture
def db(database_url):
    database = Database(database_url)
    yield database
    database.dispose()


AUDIT = AuditLog(b"k" * 32)
ACTOR = SystemActor(sub="test")


def _append(db, n, **kw):
    for i in range(n):
        with db.transaction() as session:
            AUDIT.record(session, action="test.event", outcome="ok", actor=ACTOR, details={"i": i}, **kw)
            AUDIT.integrate_pending(session)  # what the sequencer does next, here at once


def _tamper(db, statement):
    """What an operator with database access could do: switch the guard off, then write."""
    with db.engine.begin() as conn:
        if db.dialect == "postgresql":
            conn.execute(sa.text("SET LOCAL session_replication_role = replica"))
        else:
            conn.execute(sa.text("DROP TRIGGER audit_events_no_update"))
            conn.execute(sa.text("DROP TRIGGER audit_events_no_delete"))
        conn.execute(sa.text(statement))


@pytest.mark.parametrize("statement", ["UPDATE audit_events SET outcome = 'refused' WHERE seq = 2",
                                       "DELETE FROM audit_events WHERE seq = 2"])
def test_the_database_refuses_updates_and_deletes(db, statement):
    _append(db, 3)
    with pytest.raises(sa.exc.DBAPIError) as refused:
        with db.engine.begin() as conn:
            conn.execute(sa.text(statement))
    assert "append-only" in str(refused.value)
    with db.reading() as session:
        assert verify_log(session).ok


@pytest.mark.parametrize("backend", ["postgresql"], indirect=True)  # SQLite has no TRUNCATE
def test_truncate_is_refused_on_postgresql(db):
    _append(db, 1)
    with pytest.raises(sa.exc.DBAPIError, match="append-only"):
        with db.engine.begin() as conn:
            conn.execute(sa.text("TRUNCATE audit_events"))


def test_concurrent_writers_never_fork_the_chain(db):
    errors = []

    def writer():
        try:
            _append(db, 15)
        except Exception as exc:
            errors.append(exc)

    threads = [threading.Thread(target=writer) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors
    with db.reading() as session:
        report = verify_log(session, batch=7)  # small batches: the walk crosses batch borders
        seqs = list(session.scalars(sa.select(AuditEvent.seq).order_by(AuditEvent.seq)))
    assert report.ok and report.events_checked == 90
    assert seqs == list(range(1, 91))


def test_identity_numbers_are_stored_masked_and_keyed(db):
    with db.transaction() as session:
        AUDIT.record(session, action="t", outcome="ok", subject_id_number="330102198703151157")
        AUDIT.integrate_pending(session)
    with db.reading() as session:
        event = session.scalars(sa.select(AuditEvent)).one()
        assert event.subject_masked == "3301**********1157"
        assert event.subject_hash == AUDIT.subject_hash("330102198703151157") != AuditLog(b"j" * 32).subject_hash("330102198703151157")
        row = session.execute(sa.text("SELECT * FROM audit_events")).one()
        assert "330102198703151157" not in " ".join(str(v) for v in row)


@pytest.mark.parametrize(
    "statement, first_bad",
    [
        ("UPDATE audit_events SET outcome = 'refused' WHERE seq = 3", 3),
        ("UPDATE audit_events SET details = '{\"i\": 99}' WHERE seq = 4", 4),
        ("DELETE FROM audit_events WHERE seq = 2", 2),
        ("UPDATE audit_events SET seq = seq + 100 WHERE seq = 3", 3),
    ],
)
def test_cli_verify_names_the_first_bad_event(db, database_url, statement, first_bad):
    _append(db, 5)
    runner = CliRunner()
    ok = runner.invoke(main, ["audit", "verify"], env={"GATEWAY_DATABASE_URL": database_url, "GATEWAY_CONFIG": ""})
    assert ok.exit_code == 0 and "verified: 5 events" in ok.output
    _tamper(db, statement)
    broken = runner.invoke(main, ["audit", "verify"], env={"GATEWAY_DATABASE_URL": database_url, "GATEWAY_CONFIG": ""})
    assert broken.exit_code == 1
    assert f"BROKEN at event {first_bad}" in broken.output, broken.output


def test_cli_verify_detects_a_forged_insert(db, database_url):
    _append(db, 3)
    with db.reading() as session:
        second = session.get(AuditEvent, 2)
        forged = {c.name: getattr(second, c.name) for c in AuditEvent.__table__.columns}
    _tamper(db, "DELETE FROM audit_events WHERE seq >= 2")
    with db.engine.begin() as conn:  # a forged event re-inserted with altered content, then the rest
        conn.execute(sa.insert(AuditEvent.__table__).values({**forged, "outcome": "forged"}))
    result = CliRunner().invoke(main, ["audit", "verify"], env={"GATEWAY_DATABASE_URL": database_url, "GATEWAY_CONFIG": ""})
    assert result.exit_code == 1 and "BROKEN at event 2" in result.output and "altered" in result.output


def test_many_events_appended_at_once_chain_like_one_by_one(db):
    _append(db, 2)
    with db.transaction() as session:
        AUDIT.record_many(session, [
            {"action": "delivery.result", "outcome": "answered", "actor": ACTOR, "request_id": f"r{i}",
             "subject_id_number": "330102198703151157", "details": {"i": i}}
            for i in range(50)
        ])
        AUDIT.integrate_pending(session)
    _append(db, 1)
    with db.reading() as session:
        report = verify_log(session)
        rows = session.execute(sa.select(AuditEvent.seq, AuditEvent.subject_masked).order_by(AuditEvent.seq)).all()
    assert report.ok and report.events_checked == 53
    assert [r.seq for r in rows] == list(range(1, 54))
    assert rows[2].subject_masked == "3301**********1157"
    with db.transaction() as session:
        AUDIT.record_many(session, [])  # nothing to append: nothing written
        assert AUDIT.integrate_pending(session) == 0
    with db.reading() as session:
        assert verify_log(session).events_checked == 53
