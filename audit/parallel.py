"""The chain walk split across processes.

Whether an event's content matches its own hash does not depend on the events
before it, only whether it links to them; so the seq range is cut into parts,
each part is walked in its own process (its own database connection) from its
first event's stored ``prev_hash``, and the parts are then stitched: each part
must begin with the hash the part before it ended on. The result is the report
one walk from the start would give (the first break in seq order).
"""

from __future__ import annotations

import gc
import multiprocessing
from concurrent.futures import ProcessPoolExecutor
from typing import Any, cast

from sqlalchemy import Connection, create_engine, make_url, pool

from audit.chain import ChainReport, verify_rows
from audit.sqlite_walk import ApswConnection, sqlite_walk
from audit.store import event_tuples
from audit.walk import StitchedWalk

_FIRST_PREV = "SELECT seq, prev_hash FROM audit_events WHERE seq > ? ORDER BY seq LIMIT 1"


def _walk_part(url: str, after: int, upto: int, batch: int,
               mac_key: bytes | None = None) -> tuple[ChainReport, str | None, int | None]:
    """Walk events (after, upto] from the first one's own prev_hash; also return
    that prev_hash and the first event's seq (None: the part is empty).

    On an SQLite file, through apsw's SQLite (audit/sqlite_walk.py: its JSON
    functions write the events' encoding twice as fast as the system's), and
    through nothing else, so that one SQLite alone opens the file here."""
    gc.disable()  # a short-lived process walking flat rows: the collector would only rescan them (~15%)
    database = make_url(url)
    path = database.database if database.get_backend_name() == "sqlite" else None
    if path and path != ":memory:" and not path.startswith("file:"):
        reader = ApswConnection(path)
        try:
            return _walk(cast(Connection, reader), after, upto, batch, mac_key)
        finally:
            reader.close()
    engine = create_engine(url, poolclass=pool.NullPool)
    try:
        with engine.connect() as connection:
            return _walk(connection, after, upto, batch, mac_key)
    finally:
        engine.dispose()


def _walk(connection: Connection, after: int, upto: int, batch: int,
          mac_key: bytes | None) -> tuple[ChainReport, str | None, int | None]:
    cursor = connection.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
    try:
        cursor.execute(_FIRST_PREV.replace("?", "%s") if connection.dialect.paramstyle != "qmark" else _FIRST_PREV,
                       (after,))
        first = cursor.fetchall()
    finally:
        cursor.close()
    if not first or first[0][0] > upto:
        return ChainReport(True, 0, after, ""), None, None
    first_seq, first_prev = first[0]
    report = sqlite_walk(connection, after_seq=after, up_to_seq=upto, start_seq=first_seq, start_hash=first_prev,
                         mac_key=mac_key, batch=batch)
    if report is None:  # PostgreSQL, or an SQLite that cannot encode the events itself
        report = verify_rows(event_tuples(connection, after_seq=after, up_to_seq=upto, batch=batch),
                             start_seq=first_seq, start_hash=first_prev, mac_key=mac_key)
    return report, first_prev, first_seq


def verify_parts(url: str, *, start_seq: int, start_hash: str, head_seq: int, workers: int,
                 batch: int = 20_000, mac_key: bytes | None = None) -> ChainReport:
    """Walk seqs start_seq..head_seq (and whatever lies past head_seq) in ``workers`` parts.

    MACs are stitched like links: an event without a MAC after one with a MAC in
    an earlier part is reported as it would be in one walk."""
    span = max(0, head_seq - start_seq + 1)
    size = max(1, -(-span // workers))
    bounds = [(start_seq - 1 + i * size, start_seq - 1 + (i + 1) * size) for i in range(workers) if i * size < span]
    if not bounds:
        bounds = [(start_seq - 1, start_seq - 1)]
    bounds[-1] = (bounds[-1][0], 2**62)  # the last part runs to the end: events past the head are walked too
    context = multiprocessing.get_context("fork")
    with ProcessPoolExecutor(max_workers=len(bounds), mp_context=context) as executor:
        results = list(executor.map(_walk_part, [url] * len(bounds), [a for a, _ in bounds], [b for _, b in bounds],
                                    [batch] * len(bounds), [mac_key] * len(bounds)))
    walk = StitchedWalk(start_seq, start_hash, checking_macs=mac_key is not None)
    for report, first_prev, first_seq in results:
        if first_seq is None:
            continue  # nothing here: if events follow, the next part's first one shows the gap
        broken = walk.add(report, first_seq, first_prev)
        if broken is not None:
            return broken
    return walk.report()


def database_url(bind: Any) -> str:
    """The URL of a session's or connection's engine, password included, for the worker processes."""
    return bind.engine.url.render_as_string(hide_password=False)
