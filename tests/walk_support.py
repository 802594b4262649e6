"""The quick walk on SQLite (audit/sqlite_walk.py) held against the plain one
(``verify_rows`` over ``event_tuples``), which defines what a walk reports."""

from __future__ import annotations

from typing import Any

import pytest
import sqlalchemy as sa

from audit import sqlite_walk as quick
from audit.chain import GENESIS_HASH, event_hash
from audit.chain import ChainReport, verify_rows
from audit.models import AuditEvent
from audit.parallel import database_url, verify_parts
from audit.store import event_tuples, live_chain_start
from gateway.timeutil import utc_now


def plain_walk(session: Any, event_key: bytes | None) -> ChainReport:
    start_seq, start_hash = live_chain_start(session)
    return verify_rows(event_tuples(session, after_seq=start_seq - 1), start_seq=start_seq, start_hash=start_hash,
                       mac_key=event_key)


def quick_walk(session: Any, event_key: bytes | None, *, batch: int = 5000) -> ChainReport | None:
    start_seq, start_hash = live_chain_start(session)
    return quick.sqlite_walk(session.connection(), after_seq=start_seq - 1, start_seq=start_seq,
                             start_hash=start_hash, mac_key=event_key, batch=batch)


def worker_walk(session: Any, event_key: bytes | None, *, batch: int = 5000) -> ChainReport:
    """The walk in one worker process, as ``gateway audit verify`` runs it (on
    SQLite through apsw's SQLite, which this process must not open the file with)."""
    start_seq, start_hash = live_chain_start(session)
    head = session.execute(sa.select(sa.func.max(AuditEvent.seq))).scalar() or 0
    return verify_parts(database_url(session.get_bind()), start_seq=start_seq, start_hash=start_hash, head_seq=head,
                        workers=1, batch=batch, mac_key=event_key)


def assert_walks_agree(session: Any, event_key: bytes | None, *, batch: int = 5000) -> ChainReport:
    """The walks, with and without the key: the same reports. The quick walk is
    there on SQLite (a migrated database) and only there; a worker process's walk
    says the same on both databases."""
    for key in (event_key, None):
        expected = plain_walk(session, key)
        got = quick_walk(session, key, batch=batch)
        if session.get_bind().dialect.name == "sqlite":
            assert got == expected
        else:
            assert got is None
        assert worker_walk(session, key, batch=batch) == expected
    return expected


class EventsReadOneByOne:
    """How many events the quick walk left to ``verify_rows`` (it reads them
    with ``event_tuples``): a spy around the real reader."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.count = 0
        real = quick.event_tuples

        def counted(*args: Any, **kwargs: Any):
            for row in real(*args, **kwargs):
                self.count += 1
                yield row

        monkeypatch.setattr(quick, "event_tuples", counted)


def events_from_before_macs(seqs: range | tuple[int, ...], prev: str = GENESIS_HASH) -> list[dict[str, Any]]:
    """Chained audit rows as written before migration 0008: no MAC, details in
    json.dumps' default form; hashed one after the other from ``prev``."""
    rows = []
    for seq in seqs:
        row = {"seq": seq, "at": utc_now(), "actor_sub": "old", "actor_role": "system", "actor_court": None,
               "actor_agency": None, "action": "test.old", "outcome": "ok", "case_number": None,
               "subject_hash": None, "subject_masked": None, "request_id": None, "delivery_id": None,
               "details": {"seq": seq}, "prev_hash": prev, "mac": None}
        row["hash"] = prev = event_hash(row, prev)
        rows.append(row)
    return rows
