"""The chain walk on SQLite, with the database building each event's encoding.

Reading an event's seventeen fields into Python objects and encoding them there
was three quarters of the time per event of the plain walk (``verify_rows`` over
``event_tuples``; profile in bench/RESULTS.md, 2026-12-07). Here SQLite writes
each event's canonical encoding itself, with ``json_object`` over the hashed
fields in their sorted order, and Python only hashes those bytes and checks the
MAC. The bytes are the same: ``json_object`` writes compact JSON in the order of
its arguments and escapes a string exactly as ``json.dumps(ensure_ascii=False)``
does (a quote, a backslash, ``\\b \\f \\n \\r \\t``, other control characters as
``\\u00xx``; a test holds the two together on arbitrary text); ``details`` goes in
as stored, as ``event_tuples`` puts it; ``at`` is cut into its hashed form when
stored in SQLAlchemy's 26-character form, as ``event_tuples`` cuts it, and is
null (the event fails the quick check) otherwise.

The quick check (audit/walk.py) passes only events ``verify_rows`` would pass.
Every other event, with the rest of its batch, is walked by ``verify_rows``,
which says what is wrong exactly as before; so are whole batches of events
from before MACs or before ``details`` was stored canonically. Where SQLite
cannot build the encoding (no JSON functions, or a table whose text columns
could hold numbers, which SQLite would write in its own way) ``sqlite_walk``
says so, and the caller walks with ``verify_rows``, as on PostgreSQL.

The worker processes of audit/parallel.py make the quick reads through apsw's
own SQLite (3.45 and later write JSON strings with an unrolled loop: a million
encodings in 0.8 s of CPU here, against 1.7 s with the system's 3.40), over a
connection of their own; everything else, and the one-process walk, goes
through the caller's connection.
"""

from __future__ import annotations

import sqlite3
from contextlib import closing
from itertools import islice
from typing import Any, Generator, Iterator, cast

import apsw
from sqlalchemy import Connection

from audit.chain import HASHED_FIELDS, ROW_FIELDS, CanonicalJSONText, ChainReport, event_mac_function, verify_rows
from audit.store import event_tuples
from audit.walk import StitchedWalk, keyed_run, keyed_run_length

_NO_END = 2**62
_KEYS = tuple(sorted((*HASHED_FIELDS, "prev_hash")))  # the encoding's order (audit/chain.py)
# 'YYYY-MM-DD HH:MM:SS.ffffff' -> 'YYYY-MM-DDTHH:MM:SS.ffffffZ', as event_tuples cuts it; else null.
_AT = ("CASE WHEN length(at) = 26 AND substr(at, 11, 1) = ' ' "
       "THEN substr(at, 1, 10) || 'T' || substr(at, 12) || 'Z' END")
_FIELD_SQL = {"at": _AT, "details": "0"}  # details: walk.DETAILS_MARK, where the stored text goes
_ENCODING = "json_object(" + ", ".join(f"'{key}', {_FIELD_SQL.get(key, key)}" for key in _KEYS) + ")"
QUICK_QUERY = (f"SELECT seq, CAST({_ENCODING} AS BLOB), details, prev_hash, hash, mac FROM audit_events "
               "WHERE seq > ? AND seq <= ? ORDER BY seq LIMIT ?")
_QUICK_HASH = 4  # where the stored hash is in a QUICK_QUERY row
# Columns json_object writes as strings only if SQLite holds nothing but text (or
# null, or a blob, which json_object refuses) in them: those of TEXT affinity.
_TEXT_COLUMNS = [key for key in _KEYS if key not in ("seq", "at", "details")]
_ROW_MAC, _ROW_DETAILS = ROW_FIELDS.index("mac"), ROW_FIELDS.index("details")


def sqlite_walk(connection: Connection, *, after_seq: int, start_seq: int, start_hash: str,
                up_to_seq: int | None = None, mac_key: bytes | None = None, batch: int = 5000) -> ChainReport | None:
    """What ``verify_rows`` over ``event_tuples`` says of the events (after_seq,
    up_to_seq] from ``start_seq`` linking to ``start_hash``, in about half the
    time; None where the database is not SQLite or cannot build the encoding.
    ``connection`` may also be an ``ApswConnection`` (the worker processes)."""
    dbapi_connection = connection.connection.dbapi_connection
    if connection.dialect.name != "sqlite" or dbapi_connection is None or not encodes_events(dbapi_connection):
        return None
    mac_of = event_mac_function(mac_key) if mac_key is not None else None
    walk = StitchedWalk(start_seq, start_hash, checking_macs=mac_key is not None)
    last, end, quick = after_seq, _NO_END if up_to_seq is None else up_to_seq, True
    with closing(dbapi_connection.cursor()) as cursor:
        while True:
            rows = _quick_rows(cursor, last, end, batch) if quick else None
            if rows is not None:
                if not rows:
                    return walk.report()
                sound = keyed_run_length(rows, walk.next_seq, walk.head_hash, mac_of)
                if sound:
                    walk.add(keyed_run(walk.next_seq, rows, sound, _QUICK_HASH))
                if sound == len(rows):
                    last = rows[-1][0]
                    continue
                # Event by event from the first that is not plainly sound to the end of the batch.
                after, upto, limit = rows[sound - 1][0] if sound else last, rows[-1][0], None
            else:
                after, upto, limit = last, end, batch
            read = _LastRow()
            # closed at once, not when collected: its cursor stays open while it is not
            plain = cast(Generator[tuple, None, None], event_tuples(connection, after_seq=after, up_to_seq=upto, batch=batch))
            with closing(plain) as events:
                part = verify_rows(read.through(events if limit is None else islice(events, limit)),
                                   start_seq=walk.next_seq, start_hash=walk.head_hash, mac_key=mac_key)
            broken = walk.add(part)
            if broken is not None:
                return broken
            if read.row is None:
                return walk.report()
            last, quick = read.row[0], read.looks_keyed()


def _quick_rows(cursor: Any, last: int, end: int, batch: int) -> list[tuple] | None:
    """The next batch as QUICK_QUERY reads it; None if SQLite will not encode it
    (json_object refuses a blob) or a text is not UTF-8: that batch is walked
    event by event, which fails on such a value as it always did."""
    try:
        return cursor.execute(QUICK_QUERY, (last, end, batch)).fetchall()
    except (sqlite3.OperationalError, apsw.Error, UnicodeDecodeError):
        return None


class ApswConnection:
    """An apsw connection to the database file, in the shape ``event_tuples`` and
    ``sqlite_walk`` read a SQLAlchemy connection through (its dialect, its DBAPI
    connection). A worker process reads through apsw alone: two copies of SQLite
    in one process must not open one file, as each drops the other's POSIX locks
    when it closes it (sqlite.org, "How To Corrupt An SQLite Database File", 2.2.1)."""

    class dialect:  # noqa: N801 - the attribute SQLAlchemy's Connection has
        name, paramstyle = "sqlite", "qmark"

    def __init__(self, path: str) -> None:
        self.dbapi_connection = apsw.Connection(path, flags=apsw.SQLITE_OPEN_READWRITE)  # a WAL reader writes -shm
        self.connection = self
        # Read once, in order: mapped, SQLite reads the pages without a copy each.
        self.dbapi_connection.execute("PRAGMA mmap_size = 4294967296")

    def close(self) -> None:
        self.dbapi_connection.close()


class _LastRow:
    """The last row an event-by-event part read, and whether the events after it
    are likely new enough (keyed, details stored canonically) for the quick check."""

    def __init__(self) -> None:
        self.row: tuple | None = None

    def through(self, rows: Iterator[tuple]) -> Iterator[tuple]:
        for row in rows:
            self.row = row
            yield row

    def looks_keyed(self) -> bool:
        row = self.row
        return row is not None and row[_ROW_MAC] is not None and type(row[_ROW_DETAILS]) is CanonicalJSONText


def encodes_events(dbapi_connection: Any) -> bool:
    """Whether SQLite here can build the events' encoding (it has its JSON
    functions) and the table's text columns can hold only text."""
    try:
        columns = {row[1]: (row[2] or "").upper() for row in dbapi_connection.execute("PRAGMA table_info(audit_events)")}
        dbapi_connection.execute("SELECT json_object('a', 1)").fetchall()
    except (sqlite3.Error, apsw.Error):
        return False
    # SQLite's affinity rules: a declared type with INT is INTEGER; else one with CHAR, CLOB or TEXT is TEXT.
    return all(name in columns and "INT" not in columns[name] and any(t in columns[name] for t in ("CHAR", "CLOB", "TEXT"))
               for name in _TEXT_COLUMNS)
