"""Group commit and the SQLite write gate: many writers, one transaction each
batch, a failing unit rolled back alone, nothing half-written."""

import threading
import uuid
from concurrent.futures import ThreadPoolExecutor

import pytest
import sqlalchemy as sa

from audit.models import AuditEvent
from audit.store import AuditLog, SystemActor, verify_log
from gateway.db import Database
from gateway.requests.models import Request

AUDIT = AuditLog(b"g" * 32)


@pytest.fixture
def db(database_url):
    database = Database(database_url)
    yield database
    database.dispose()


def _event(connection, i):
    return AUDIT.record(connection, action="test.unit", outcome="ok", actor=SystemActor("t"), details={"i": i})["seq"]


def test_many_threads_all_committed_in_order(db):
    with ThreadPoolExecutor(max_workers=12) as pool:
        seqs = list(pool.map(lambda i: db.group_commit.submit(lambda c: _event(c, i)), range(120)))
    assert sorted(seqs) == list(range(1, 121))
    with db.reading() as session:
        assert verify_log(session).ok
        assert session.scalar(sa.select(sa.func.count()).select_from(AuditEvent)) == 120


def test_a_failing_unit_is_rolled_back_alone(db):
    """Units that wait together share a transaction; one raising leaves the others committed."""
    started, release = threading.Event(), threading.Event()

    def slow_unit(connection):  # holds the writer so that the next three queue into one batch
        started.set()
        release.wait(5)
        return _event(connection, 0)

    def failing_unit(connection):
        _event(connection, 99)  # written, then undone with its savepoint
        raise ValueError("this unit fails")

    with ThreadPoolExecutor(max_workers=4) as pool:
        first = pool.submit(db.group_commit.submit, slow_unit)
        assert started.wait(5)
        later = [pool.submit(db.group_commit.submit, unit) for unit in
                 (lambda c: _event(c, 1), failing_unit, lambda c: _event(c, 2))]
        while db.group_commit._queue.qsize() < 3:  # all three wait behind the slow unit
            threading.Event().wait(0.01)
        release.set()
        assert first.result(10) == 1
        with pytest.raises(ValueError, match="this unit fails"):
            later[1].result(10)
        assert {later[0].result(10), later[2].result(10)} == {2, 3}
    with db.reading() as session:
        details = [e.details["i"] for e in session.scalars(sa.select(AuditEvent).order_by(AuditEvent.seq))]
        assert sorted(details) == [0, 1, 2] and verify_log(session).ok


def test_a_failed_commit_fails_every_unit_of_its_batch(db, monkeypatch):
    def broken_transaction():
        raise sa.exc.OperationalError("COMMIT", {}, Exception("disk full"))

    monkeypatch.setattr(db, "connection_transaction", broken_transaction)
    with pytest.raises(sa.exc.OperationalError):
        db.group_commit.submit(lambda c: _event(c, 1))
    monkeypatch.undo()
    assert db.group_commit.submit(lambda c: _event(c, 2)) == 1  # the writer survives and goes on


def test_concurrent_resends_with_one_key_make_one_request(api, app):
    """A court system retrying over a bad link: eight copies at once, one request."""
    assert api.register_case().status_code == 201
    key = f"race-{uuid.uuid4()}"
    with ThreadPoolExecutor(max_workers=8) as pool:
        replies = list(pool.map(lambda _: api.inquire(key=key), range(8)))
    assert [r.status_code for r in replies] == [202] * 8
    assert len({r.json()["id"] for r in replies}) == 1
    assert all(r.json() == replies[0].json() for r in replies)
    with app.extensions["db"].reading() as session:
        assert session.scalar(sa.select(sa.func.count()).select_from(Request)) == 1
        outcomes = [e.outcome for e in session.scalars(sa.select(AuditEvent).where(AuditEvent.action == "request.inquiry"))]
    assert sorted(outcomes) == ["accepted"] + ["replayed"] * 7
