"""Many writers at once: threads and processes through the write gate, and a
court system re-sending one request concurrently. Nothing lost, nothing forked,
nothing duplicated."""

import subprocess
import sys
import textwrap
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


def _append(db, i):
    with db.connection_transaction() as connection:
        AUDIT.record(connection, action="test.write", outcome="ok", actor=SystemActor("t"), details={"i": i})
    if i % 10 == 0:  # integrations racing the writers, as the sequencer does
        with db.transaction() as session:
            AUDIT.integrate_pending(session)


def _integrate(db):
    with db.transaction() as session:
        AUDIT.integrate_pending(session)


def test_threads_writing_at_once_keep_one_gapless_chain(db):
    with ThreadPoolExecutor(max_workers=12) as pool:
        list(pool.map(lambda i: _append(db, i), range(150)))
    _integrate(db)
    with db.reading() as session:
        seqs = list(session.scalars(sa.select(AuditEvent.seq).order_by(AuditEvent.seq)))
        marks = sorted(e.details["i"] for e in session.scalars(sa.select(AuditEvent)))
        assert verify_log(session).ok
    assert seqs == list(range(1, 151)) and marks == list(range(150))


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
def test_processes_writing_at_once_all_land_on_one_chain(db, database_url, tmp_path):
    """Two processes, each with four threads, on one SQLite file: every write lands,
    none fails with "database is locked", and the chain is one."""
    script = tmp_path / "writer.py"
    script.write_text(textwrap.dedent(f"""
        from concurrent.futures import ThreadPoolExecutor
        from audit.store import AuditLog, SystemActor
        from gateway.db import Database
        db, audit = Database({database_url!r}), AuditLog(b"g" * 32)
        def write(i):
            with db.connection_transaction() as c:
                audit.record(c, action="test.process", outcome="ok", actor=SystemActor("p"), details={{"i": i}})
        with ThreadPoolExecutor(4) as pool:
            list(pool.map(write, range(100)))
    """))
    writers = [subprocess.Popen([sys.executable, str(script)], stderr=subprocess.PIPE, text=True) for _ in range(2)]
    for writer in writers:
        _, err = writer.communicate(timeout=120)
        assert writer.returncode == 0, err
    _integrate(db)
    with db.reading() as session:
        report = verify_log(session)
        assert report.ok and report.events_checked == 200


def test_concurrent_resends_with_one_key_make_one_request(api, app):
    """A court system retrying over a bad link: eight copies at once, one request."""
    assert api.register_case().status_code == 201
    key = f"race-{uuid.uuid4()}"
    with ThreadPoolExecutor(max_workers=8) as pool:
        replies = list(pool.map(lambda _: api.inquire(key=key), range(8)))
    assert [r.status_code for r in replies] == [202] * 8
    assert len({r.json()["id"] for r in replies}) == 1
    assert all(r.json() == replies[0].json() for r in replies)
    with app.extensions["db"].transaction() as session:
        app.extensions["audit"].integrate_pending(session)
    with app.extensions["db"].reading() as session:
        assert session.scalar(sa.select(sa.func.count()).select_from(Request)) == 1
        outcomes = [e.outcome for e in session.scalars(sa.select(AuditEvent).where(AuditEvent.action == "request.inquiry"))]
    assert sorted(outcomes) == ["accepted"] + ["replayed"] * 7
