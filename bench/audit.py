"""Audit benchmark: chained appends beside bare inserts, and verifying a million events.

    .venv/bin/python bench/audit.py [--appends 2000] [--verify-events 1000000] [--workers N] [--no-postgres]

1. Appends per second through ``AuditLog.record`` beside bare inserts of the same
   rows into a twin table with the same columns and indexes, with the same
   durability: the same database and settings, one transaction and one commit per
   event through the gateway's own ``Database.connection_transaction`` (SQLite:
   WAL, synchronous=FULL, BEGIN IMMEDIATE, the write gate). The two alternate in
   rounds so that other load on the machine hits both alike. On SQLite, and on
   PostgreSQL (127.0.0.1:5432, database test, a private schema) if reachable.
   On PostgreSQL an append writes the event to audit_pending (encode, leaf hash,
   no chain lock) and the sequencer's integration is timed apart, after the
   rounds; on SQLite the append chains the event in its own transaction (no
   sequencer there), so the timed appends include all of it. Each line also gives
   the ratio with the integration counted ("all in").
2. The time to verify ``--verify-events`` events: they are generated with the
   chain functions and bulk-inserted into a fresh SQLite database, then
   ``verify_log_with_checkpoints`` walks them (hashes and MACs), split over ``--workers`` processes
   (what `gateway audit verify` does) and, for comparison, in one process.

Last line: ``audit ratio: X`` = SQLite chained appends/s over bare inserts/s.
Exits 1 without it if a chain does not verify. Figures: bench/RESULTS.md.
"""

from __future__ import annotations

import argparse
import os
import resource
import sqlite3
import sys
import tempfile
import time
import uuid
from datetime import datetime, timedelta, timezone
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import sqlalchemy as sa  # noqa: E402

from audit.chain import GENESIS_HASH, canonical_json, event_hash, event_mac, event_mac_key, format_time  # noqa: E402
from audit.checkpoint_store import verify_log_with_checkpoints  # noqa: E402
from audit.models import AuditEvent, AuditPending  # noqa: E402
from audit.store import AuditLog, SystemActor, verify_log  # noqa: E402
from gateway import migrate  # noqa: E402
from gateway.db import Database  # noqa: E402

PG_SERVER = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
DEBTOR_ID = "330102198703151157"  # fictitious, valid check digit
CASE_NUMBER = "(2024)浙0102执1234号"
ACTOR = SystemActor(sub="officer.wang", role="court_officer", court="330102")
# The same columns as audit_pending, what a business transaction now writes (the
# sequencer moves the events into audit_events afterwards, off the business path).
BARE_TABLE = sa.Table("bench_bare_events", sa.MetaData(naming_convention=AuditEvent.metadata.naming_convention),
                      *[column._copy() for column in AuditPending.__table__.columns])
ROUND = 100
SUBJECT_KEY = b"bench-subject-key-0123456789abcdef"
EVENT_KEY = event_mac_key(SUBJECT_KEY)  # what AuditLog(SUBJECT_KEY) MACs events with


def event_kwargs(i: int) -> dict:
    """What intake records for one accepted inquiry."""
    return {"action": "request.inquiry", "outcome": "accepted", "actor": ACTOR, "case_number": CASE_NUMBER,
            "subject_id_number": DEBTOR_ID, "request_id": str(uuid.uuid4()),
            "details": {"categories": ["identity", "vehicle", "whereabouts"], "legal_basis": None,
                        "deliveries": {str(uuid.uuid4()): "psb"}, "idempotency_key": f"bench-{i}"}}


def measure_appends(url: str, appends: int) -> dict:
    db = Database(url)
    BARE_TABLE.create(db.engine)
    audit = AuditLog(SUBJECT_KEY)
    chained = bare = 0.0
    bare_insert = sa.insert(BARE_TABLE)
    done = 0
    while done < appends:
        n = min(ROUND, appends - done)
        rows = []
        started = time.perf_counter()
        for i in range(done, done + n):
            with db.connection_transaction() as connection:
                rows.append(audit.record(connection, **event_kwargs(i)))
        chained += time.perf_counter() - started
        started = time.perf_counter()
        for row in rows:  # the same rows, as they were appended
            with db.connection_transaction() as connection:
                connection.execute(bare_insert, [row])
        bare += time.perf_counter() - started
        done += n
    started = time.perf_counter()
    with db.transaction() as session:  # PostgreSQL: the sequencer's work, off the business path (SQLite: none left)
        moved = audit.integrate_pending(session)
    integrated = time.perf_counter() - started
    print(f"  {url.split(':')[0]}: sequencer integrated {moved} events afterwards in {integrated:.3f} s")
    with db.reading() as session:
        report = verify_log(session, mac_key=audit.event_key)
        bare_rows = session.execute(sa.select(sa.func.count()).select_from(BARE_TABLE)).scalar_one()
    db.dispose()
    if not report.ok or report.events_checked != appends or bare_rows != appends:
        raise SystemExit(f"{url.split(':')[0]}: chain or row count wrong: {report}, bare rows {bare_rows}")
    return {"chained": appends / chained, "bare": appends / bare, "all_in": appends / (chained + integrated)}


def generate(path: Path, count: int) -> float:
    """Insert ``count`` chained events straight into SQLite, stored as AuditLog stores them."""
    started = time.perf_counter()
    base = datetime(2026, 1, 1, tzinfo=timezone.utc)
    prev = GENESIS_HASH
    connection = sqlite3.connect(path)
    connection.execute("PRAGMA journal_mode=WAL")
    columns = [c.name for c in AuditEvent.__table__.columns]
    insert = f"INSERT INTO audit_events ({', '.join(columns)}) VALUES ({', '.join('?' * len(columns))})"
    batch = []
    for seq in range(1, count + 1):
        at = format_time(base + timedelta(milliseconds=seq))
        event = {"seq": seq, "at": at, "actor_sub": f"officer.{seq % 97}", "actor_role": "court_officer",
                 "actor_court": "330102", "actor_agency": None, "action": "request.inquiry", "outcome": "accepted",
                 "case_number": CASE_NUMBER, "subject_hash": f"{seq % 5000:064x}", "subject_masked": "3301**********1157",
                 "request_id": str(uuid.UUID(int=seq)), "delivery_id": None,
                 "details": {"categories": ["identity", "vehicle"], "idempotency_key": f"k-{seq}"}}
        digest = event_hash(event, prev)
        stored = {**event, "at": at[:10] + " " + at[11:-1], "details": canonical_json(event["details"]),
                  "prev_hash": prev, "hash": digest, "mac": event_mac(EVENT_KEY, digest)}
        batch.append(tuple(stored[c] for c in columns))
        prev = digest
        if len(batch) == 50_000:
            connection.executemany(insert, batch)
            batch = []
    connection.executemany(insert, batch)
    connection.commit()
    connection.close()
    return time.perf_counter() - started


def time_verify(url: str, count: int, workers: int) -> tuple[float, float]:
    """Wall seconds and CPU seconds (this process and its children) to verify the log."""
    db = Database(url)
    before = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    with db.reading() as session:
        report = verify_log_with_checkpoints(session, None, workers=workers, batch=20_000, event_key=EVENT_KEY)
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    db.dispose()
    if not report.ok or report.chain.events_checked != count:
        raise SystemExit(f"verification of the generated log failed: {report.chain}")
    cpu = sum(a.ru_utime + a.ru_stime - b.ru_utime - b.ru_stime for a, b in zip(after, before))
    return wall, cpu


def postgres_url() -> tuple[str, str] | None:
    engine = sa.create_engine(PG_SERVER, isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as connection:
            schema = f"bench_audit_{os.getpid()}"
            connection.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
        return f"{PG_SERVER}?options=-csearch_path%3D{schema}", schema
    except Exception as exc:  # not reachable: the SQLite figures still stand
        print(f"PostgreSQL not reachable ({type(exc).__name__}); SQLite only")
        return None
    finally:
        engine.dispose()


def drop_schema(schema: str) -> None:
    engine = sa.create_engine(PG_SERVER, isolation_level="AUTOCOMMIT")
    with engine.connect() as connection:
        connection.execute(sa.text(f'DROP SCHEMA "{schema}" CASCADE'))
    engine.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--appends", type=int, default=2000)
    parser.add_argument("--verify-events", type=int, default=1_000_000)
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--no-postgres", action="store_true")
    args = parser.parse_args()
    print(f"machine: {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.2f}; Python {sys.version.split()[0]}, "
          f"SQLite {sqlite3.sqlite_version}")

    with tempfile.TemporaryDirectory(prefix="bench-audit-") as tmp:
        sqlite_url = f"sqlite:///{Path(tmp) / 'appends.db'}"
        migrate.upgrade(sqlite_url)
        results = {"sqlite": measure_appends(sqlite_url, args.appends)}
        pg = None if args.no_postgres else postgres_url()
        if pg:
            try:
                migrate.upgrade(pg[0])
                results["postgresql"] = measure_appends(pg[0], args.appends)
            finally:
                drop_schema(pg[1])
        for backend, r in results.items():
            print(f"{backend}: chained appends {r['chained']:.0f}/s, bare inserts {r['bare']:.0f}/s "
                  f"({args.appends} each, one commit per event), ratio {r['chained'] / r['bare']:.2f}; "
                  f"with the integration: {r['all_in']:.0f}/s, ratio {r['all_in'] / r['bare']:.2f}")

        big = Path(tmp) / "verify.db"
        migrate.upgrade(f"sqlite:///{big}")
        generated = generate(big, args.verify_events)
        print(f"generated and inserted {args.verify_events} chained events in {generated:.1f} s")
        wall, cpu = time_verify(f"sqlite:///{big}", args.verify_events, args.workers)
        print(f"verify {args.verify_events} events, {args.workers} processes: {wall:.2f} s wall, {cpu:.2f} s CPU")
        wall1, cpu1 = time_verify(f"sqlite:///{big}", args.verify_events, 1)
        print(f"verify {args.verify_events} events, 1 process: {wall1:.2f} s wall, {cpu1:.2f} s CPU")
    ratio = results["sqlite"]["chained"] / results["sqlite"]["bare"]
    print(f"audit ratio: {ratio:.2f}")


if __name__ == "__main__":
    main()
