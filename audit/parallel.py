"""The chain walk split across processes.

Whether an event's content matches its own hash does not depend on the events
before it, only whether it links to them; so the seq range is cut into parts,
each part is walked in its own process (its own database connection) from its
first event's stored ``prev_hash``, and the parts are then stitched: each part
must begin with the hash the part before it ended on. The result is the report
one walk from the start would give (the first break in seq order).
"""

from __future__ import annotations

import dataclasses
import gc
import multiprocessing
from concurrent.futures import ProcessPoolExecutor
from typing import Any

from sqlalchemy import create_engine, pool, text

from audit.chain import ChainReport, verify_rows
from audit.store import event_tuples

_FIRST_PREV = text("SELECT seq, prev_hash FROM audit_events WHERE seq > :after ORDER BY seq LIMIT 1")


def _walk_part(url: str, after: int, upto: int, batch: int,
               mac_key: bytes | None = None) -> tuple[ChainReport, str | None, int | None]:
    """Walk events (after, upto] from the first one's own prev_hash; also return
    that prev_hash and the first event's seq (None: the part is empty)."""
    gc.disable()  # a short-lived process walking flat rows: the collector would only rescan them (~15%)
    engine = create_engine(url, poolclass=pool.NullPool)
    try:
        with engine.connect() as connection:
            first = connection.execute(_FIRST_PREV, {"after": after}).first()
            if first is None or first.seq > upto:
                return ChainReport(True, 0, after, ""), None, None
            report = verify_rows(event_tuples(connection, after_seq=after, up_to_seq=upto, batch=batch),
                                 start_seq=first.seq, start_hash=first.prev_hash, mac_key=mac_key)
            return report, first.prev_hash, first.seq
    finally:
        engine.dispose()


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
    checked, prev_head, prev_hash = 0, start_seq - 1, start_hash
    macs: dict[str, Any] = {"mac_problem": None, "first_keyed_seq": None, "first_unkeyed_seq": None,
                            "last_unkeyed_seq": None}

    def with_macs(report: ChainReport) -> ChainReport:
        return dataclasses.replace(report, **macs)

    for report, first_prev, first_seq in results:
        if first_seq is None:
            continue  # nothing here: if events follow, the next part's first one shows the gap
        if first_seq != prev_head + 1:  # a gap before this part's first event
            kind = "missing" if first_seq > prev_head + 1 else "out of order or duplicated"
            return with_macs(ChainReport(False, checked, prev_head, prev_hash, prev_head + 1,
                                         f"event {prev_head + 1} is {kind}: found event {first_seq} in its place",
                                         "missing" if first_seq > prev_head + 1 else "out_of_order"))
        if first_prev != prev_hash:
            return with_macs(ChainReport(False, checked, prev_head, prev_hash, first_seq,
                                         f"event {first_seq} does not link to event {first_seq - 1}: "
                                         "its prev_hash is not that event's hash", "unlinked"))
        _stitch_macs(macs, report, mac_key is not None)
        if not report.ok:
            return with_macs(ChainReport(False, checked + report.events_checked, report.head_seq, report.head_hash,
                                         report.first_bad_seq, report.problem, report.kind))
        checked, prev_head, prev_hash = checked + report.events_checked, report.head_seq, report.head_hash
    return with_macs(ChainReport(True, checked, prev_head, prev_hash))


def _stitch_macs(macs: dict[str, Any], part: ChainReport, checking: bool) -> None:
    """Fold one part's MAC findings into those of the parts before it."""
    earlier_keyed = macs["first_keyed_seq"]
    if macs["mac_problem"] is None:
        if checking and earlier_keyed is not None and part.first_unkeyed_seq is not None and (
                part.mac_problem is None or part.first_unkeyed_seq <= part.mac_problem[0]):
            seq = part.first_unkeyed_seq
            macs["mac_problem"] = (seq, "unkeyed", f"event {seq} carries no MAC though event {earlier_keyed} before "
                                                   "it does: it was written without the event key")
        else:
            macs["mac_problem"] = part.mac_problem
    if earlier_keyed is None:
        macs["first_keyed_seq"] = part.first_keyed_seq
    if macs["first_unkeyed_seq"] is None:
        macs["first_unkeyed_seq"] = part.first_unkeyed_seq
    if part.last_unkeyed_seq is not None:
        macs["last_unkeyed_seq"] = part.last_unkeyed_seq


def database_url(bind: Any) -> str:
    """The URL of a session's or connection's engine, password included, for the worker processes."""
    return bind.engine.url.render_as_string(hide_password=False)
