"""The quick walk on SQLite (audit/sqlite_walk.py): SQLite builds the bytes the
gateway hashed, so events pass without Python encoding them, and whatever does
not plainly pass is walked by verify_rows with the same report as before."""

from __future__ import annotations

import json
import sqlite3
from json.encoder import encode_basestring  # type: ignore[attr-defined]

import apsw
import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, assume, given, settings, strategies as st

from audit.chain import GENESIS_HASH, canonical_json, event_mac_function
from audit.models import AuditEvent
from audit.sqlite_walk import QUICK_QUERY, encodes_events, sqlite_walk
from audit.store import AuditLog, SystemActor
from audit.walk import keyed_run_length
from gateway.db import Database
from walk_support import EventsReadOneByOne, assert_walks_agree, events_from_before_macs, plain_walk, quick_walk

AUDIT = AuditLog(b"w" * 32)
SQLITE_ONLY = pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
# Text as odd as an actor, a case number or a detail can hold: quotes, backslashes,
# control characters, the JSON separators, CJK, astral characters.
ODD = st.text(alphabet=st.characters(blacklist_categories=["Cs"]), max_size=30)


@pytest.fixture
def db(database_url):
    database = Database(database_url)
    yield database
    database.dispose()


def append(db, n, **fields):
    for i in range(n):
        with db.transaction() as session:
            AUDIT.record(session, action=fields.get("action", "test.event"), outcome="ok",
                         actor=fields.get("actor", SystemActor(sub="tester")), case_number=fields.get("case_number"),
                         details=fields.get("details", {"i": i}))
    with db.transaction() as session:  # sequenced into the chain, as the sequencer would
        AUDIT.integrate_pending(session)


def tamper(db, statement):
    with db.engine.begin() as conn:
        for trigger in ("audit_events_no_update", "audit_events_no_delete"):
            conn.execute(sa.text(f"DROP TRIGGER IF EXISTS {trigger}"))
        conn.exec_driver_sql(statement)


def quick_rows(db, after=0):
    """The events after ``after`` as the quick walk reads them."""
    with db.engine.connect() as conn:
        rows = conn.connection.dbapi_connection.execute(QUICK_QUERY, (after, 2**62, 10_000)).fetchall()
    return rows


@given(ODD)
@settings(max_examples=400)
def test_sqlite_escapes_a_string_as_the_canonical_encoding_does(text):
    """The system's SQLite (the one-process walk) and apsw's (the worker processes)."""
    canonical = json.dumps({"k": text}, separators=(",", ":"), ensure_ascii=False)
    assert canonical == '{"k":' + encode_basestring(text) + "}"
    for connection in (sqlite3.connect(":memory:"), apsw.Connection(":memory:")):
        (encoded,) = connection.execute("SELECT json_object('k', ?)", (text,)).fetchall()[0]
        assert encoded == canonical


@SQLITE_ONLY
@given(sub=ODD, case_number=ODD, note=ODD)
@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_events_with_any_text_pass_the_quick_check(db, sub, case_number, note):
    """What SQLite builds is byte for byte what the gateway hashed when it wrote the event
    (details holding '": ' are walked one by one, as stored text of the older form)."""
    details = {"note": note, note: [note, None, 1]}
    assume('": ' not in canonical_json(details))
    with db.reading() as session:
        head = session.execute(sa.select(AuditEvent.seq, AuditEvent.hash).order_by(AuditEvent.seq.desc())).first()
    append(db, 1, actor=SystemActor(sub=sub or None, role=None), case_number=case_number,
           details=details)
    after, prev = (head.seq, head.hash) if head else (0, GENESIS_HASH)
    rows = quick_rows(db, after)
    assert keyed_run_length(rows, after + 1, prev, event_mac_function(AUDIT.event_key)) == 1


@SQLITE_ONLY
def test_a_sound_log_is_walked_without_python_encoding_an_event(db, monkeypatch):
    append(db, 25, details={"note": 'say "x" \\ \n 杭州', "n": [1, {"b": None}]})
    read = EventsReadOneByOne(monkeypatch)
    with db.reading() as session:
        report = assert_walks_agree(session, AUDIT.event_key, batch=7)
    assert report.ok and report.events_checked == 25
    assert read.count == 0


@SQLITE_ONLY
def test_events_from_before_macs_are_walked_one_by_one_and_the_quick_walk_resumes_after_them(db, monkeypatch):
    old = events_from_before_macs(range(1, 31))
    with db.engine.begin() as conn:
        conn.execute(sa.insert(AuditEvent.__table__), old)
    append(db, 100)
    read = EventsReadOneByOne(monkeypatch)
    with db.reading() as session:
        report = assert_walks_agree(session, AUDIT.event_key, batch=10)
    assert report.ok and report.events_checked == 130 and report.first_keyed_seq == 31
    # Each walk here (with and without the key): the 30 old ones and at most a batch after them.
    assert read.count <= 2 * (30 + 10)


@SQLITE_ONLY
@pytest.mark.parametrize("statement", [
    "UPDATE audit_events SET at = replace(at, ' ', 'T') WHERE seq = 4",  # the same time in ISO form: still sound
    "UPDATE audit_events SET at = at || '+08:00' WHERE seq = 4",  # another time
    "UPDATE audit_events SET actor_sub = 'intruder' WHERE seq = 4",
    "UPDATE audit_events SET details = '{\"i\":3} ' WHERE seq = 4",
    "UPDATE audit_events SET details = '{\"i\": 3}' WHERE seq = 4",  # json.dumps' form of the same: still sound
    "UPDATE audit_events SET mac = upper(mac) WHERE seq = 4",
    "UPDATE audit_events SET prev_hash = upper(prev_hash) WHERE seq = 4",
    "UPDATE audit_events SET seq = 40 WHERE seq = 4",
])
def test_each_change_is_reported_as_the_plain_walk_reports_it(db, statement):
    append(db, 8)
    tamper(db, statement)
    with db.reading() as session:
        assert_walks_agree(session, AUDIT.event_key, batch=3)


@SQLITE_ONLY
def test_a_blob_where_text_belongs_fails_as_it_did(db):
    """json_object refuses a blob: that batch goes to verify_rows, which cannot
    encode one either, as before."""
    append(db, 3)
    tamper(db, "UPDATE audit_events SET actor_sub = CAST(actor_sub AS BLOB) WHERE seq = 2")
    with db.reading() as session, pytest.raises(TypeError):
        quick_walk(session, AUDIT.event_key)
    with db.reading() as session, pytest.raises(TypeError):
        plain_walk(session, AUDIT.event_key)


@SQLITE_ONLY
def test_a_table_whose_text_columns_could_hold_numbers_is_left_to_the_plain_walk(db):
    append(db, 2)
    with db.engine.begin() as conn:
        conn.execute(sa.text("ALTER TABLE audit_events RENAME TO audit_events_kept"))
        columns = [c.name for c in AuditEvent.__table__.columns]
        declared = ", ".join(f"{c} NUMERIC" if c == "actor_sub" else "seq INTEGER PRIMARY KEY" if c == "seq" else f"{c} TEXT"
                             for c in columns)
        conn.execute(sa.text(f"CREATE TABLE audit_events ({declared})"))  # actor_sub could now hold a number
        conn.execute(sa.text(f"INSERT INTO audit_events SELECT {', '.join(columns)} FROM audit_events_kept"))
        raw = conn.connection.dbapi_connection
        assert not encodes_events(raw)
    with db.reading() as session:
        assert quick_walk(session, AUDIT.event_key) is None
        assert sqlite_walk(session.connection(), after_seq=0, start_seq=1, start_hash=GENESIS_HASH) is None
