"""The chain walk in pieces, as pure functions over plain data: consecutive
parts of the walk stitched into the report one walk would give, and the plain
check of a run of events whose canonical encoding the database built.

A walk over millions of events (audit/stored_walk.py, audit/parallel.py) goes
part by part. A part is either walked event by event with ``verify_rows`` (the
reference, with every report it can give), or is a run of events that each
pass every check in one line: in sequence, linked, hashing to their hash, with
a MAC that matches. Such a run says nothing but "these events hold", so any
event that does not pass is handed to ``verify_rows``, which says what is wrong
with it exactly as a walk from the start would.
"""

from __future__ import annotations

import dataclasses
import hashlib
from typing import Any, Callable, Sequence

from audit.chain import ChainReport

# The placeholder the database writes where ``details`` goes (see stored_walk.py):
# its stored text, the canonical JSON, is put in its place as it is.
DETAILS_MARK = b'"details":0,'
_DETAILS_KEY, _AFTER_DETAILS = b'"details":', b","


def keyed_run_length(rows: Sequence[tuple], expected_seq: int, prev_hash: str,
                     mac_of: Callable[[str], str] | None) -> int:
    """How many of ``rows``, from the first, are sound keyed events: each row is
    (seq, canonical bytes with DETAILS_MARK for details, details text, prev_hash,
    hash, mac) as stored_walk.py reads it; the first has to be event
    ``expected_seq`` linking to ``prev_hash``. Without ``mac_of`` (no event key)
    a MAC is only required to be there, as ``verify_rows`` counts keyed events."""
    sha256 = hashlib.sha256
    join = b"".join
    checked = 0
    # One tight loop with local names: this runs once per event, millions of times.
    for seq, encoded, details, prev, digest, mac in rows:
        if seq != expected_seq or prev != prev_hash or mac is None or type(details) is not str or '": ' in details:
            break
        head, mark, tail = encoded.partition(DETAILS_MARK)
        if not mark or sha256(join((head, _DETAILS_KEY, details.encode(), _AFTER_DETAILS, tail))).hexdigest() != digest:
            break
        if mac_of is not None and mac_of(digest) != mac:
            break
        prev_hash, expected_seq, checked = digest, seq + 1, checked + 1
    return checked


def keyed_run(first_seq: int, rows: Sequence[tuple], count: int, hash_at: int) -> ChainReport:
    """The report of a run of ``count`` sound keyed events (``keyed_run_length``)."""
    last = rows[count - 1]
    return ChainReport(True, count, last[0], last[hash_at], first_keyed_seq=first_seq)


class StitchedWalk:
    """Consecutive parts of one walk, folded into the report one walk from the
    start would give: the first break in sequence order, the MAC findings of
    the events before it (an event without a MAC after one with a MAC in an
    earlier part is reported as one walk reports it)."""

    def __init__(self, start_seq: int, start_hash: str, *, checking_macs: bool) -> None:
        self.checked, self.head_seq, self.head_hash = 0, start_seq - 1, start_hash
        self._checking = checking_macs
        self._macs: dict[str, Any] = {"mac_problem": None, "first_keyed_seq": None, "first_unkeyed_seq": None,
                                      "last_unkeyed_seq": None}

    @property
    def next_seq(self) -> int:
        return self.head_seq + 1

    def add(self, part: ChainReport, first_seq: int | None = None, first_prev: str | None = None) -> ChainReport | None:
        """Fold in the next part; the final report if the walk breaks in it. With
        ``first_seq`` and ``first_prev`` (the part's first event and its stored
        prev_hash, as audit/parallel.py's parts are walked from), the part must
        also begin where the parts before it ended."""
        if first_seq is not None and first_seq != self.next_seq:  # a gap before this part's first event
            kind = "missing" if first_seq > self.next_seq else "out of order or duplicated"
            return self._with_macs(ChainReport(False, self.checked, self.head_seq, self.head_hash, self.next_seq,
                                               f"event {self.next_seq} is {kind}: found event {first_seq} in its place",
                                               "missing" if first_seq > self.next_seq else "out_of_order"))
        if first_seq is not None and first_prev != self.head_hash:
            return self._with_macs(ChainReport(False, self.checked, self.head_seq, self.head_hash, first_seq,
                                               f"event {first_seq} does not link to event {first_seq - 1}: "
                                               "its prev_hash is not that event's hash", "unlinked"))
        self._stitch_macs(part)
        if not part.ok:
            return self._with_macs(ChainReport(False, self.checked + part.events_checked, part.head_seq,
                                               part.head_hash, part.first_bad_seq, part.problem, part.kind))
        if part.events_checked:
            self.checked, self.head_seq, self.head_hash = (self.checked + part.events_checked, part.head_seq,
                                                           part.head_hash)
        return None

    def report(self) -> ChainReport:
        """The report of the parts so far, none of which broke."""
        return self._with_macs(ChainReport(True, self.checked, self.head_seq, self.head_hash))

    def _with_macs(self, report: ChainReport) -> ChainReport:
        return dataclasses.replace(report, **self._macs)

    def _stitch_macs(self, part: ChainReport) -> None:
        macs = self._macs
        earlier_keyed = macs["first_keyed_seq"]
        if macs["mac_problem"] is None:
            if self._checking and earlier_keyed is not None and part.first_unkeyed_seq is not None and (
                    part.mac_problem is None or part.first_unkeyed_seq <= part.mac_problem[0]):
                seq = part.first_unkeyed_seq
                macs["mac_problem"] = (seq, "unkeyed", f"event {seq} carries no MAC though event {earlier_keyed} "
                                                       "before it does: it was written without the event key")
            else:
                macs["mac_problem"] = part.mac_problem
        if earlier_keyed is None:
            macs["first_keyed_seq"] = part.first_keyed_seq
        if macs["first_unkeyed_seq"] is None:
            macs["first_unkeyed_seq"] = part.first_unkeyed_seq
        if part.last_unkeyed_seq is not None:
            macs["last_unkeyed_seq"] = part.last_unkeyed_seq
