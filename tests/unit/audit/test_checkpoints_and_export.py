"""Pure parts of the audit log's integrity: checkpoint signatures, the
checkpoint check over a chain, the export formats, and the window that
aggregates unauthenticated refusals."""

from __future__ import annotations

import base64
import csv
import io
from datetime import datetime, timedelta, timezone

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from audit.chain import GENESIS_HASH, event_hash
from audit.checkpoints import (
    checkpoint_chain_problem,
    checkpoint_hash,
    checkpoint_record,
    in_chain_order,
    public_key_id,
    sign_checkpoint,
    signature_problem,
    signed_bytes,
    verify_with_checkpoints,
)
from audit.export import CSV_COLUMNS, ExportFormatError, csv_row, jsonl_line, read_export, verify_export
from gateway.auditing.refusals import UnauthenticatedRefusals

KEY = Ed25519PrivateKey.generate()
T0 = datetime(2026, 11, 24, 2, 0, tzinfo=timezone.utc)


def chain(n: int) -> list[dict]:
    events, prev = [], GENESIS_HASH
    for seq in range(1, n + 1):
        event = {"seq": seq, "at": T0 + timedelta(seconds=seq), "actor_sub": "o" if seq % 2 else "", "actor_role": None,
                 "actor_court": "330102", "actor_agency": None, "action": "request.inquiry", "outcome": "accepted",
                 "case_number": "(2024)浙0102执1234号", "subject_hash": None, "subject_masked": None,
                 "request_id": None, "delivery_id": None, "details": {"n": seq, "text": "杭州, \"quoted\"\nline"}}
        event["prev_hash"], event["hash"] = prev, event_hash(event, prev)
        prev = event["hash"]
        events.append(event)
    return events


def mark(events: list[dict], seq: int, key=KEY) -> dict:
    return sign_checkpoint(key, seq=seq, head_hash=events[seq - 1]["hash"], event_count=seq, signed_at=T0)


def test_signature_covers_every_field():
    checkpoint = mark(chain(3), 3)
    public = KEY.public_key()
    assert signature_problem(checkpoint, public) is None
    assert b'"kind":"audit-checkpoint-v1"' in signed_bytes(checkpoint)
    for field, value in [("seq", 2), ("head_hash", "0" * 64), ("event_count", 4), ("signed_at", T0 + timedelta(1))]:
        assert signature_problem({**checkpoint, field: value}, public)[0] == "bad_signature", field
    garbage = {**checkpoint, "signature": base64.b64encode(b"x" * 64).decode()}
    assert signature_problem(garbage, public)[0] == "bad_signature"
    assert signature_problem({**checkpoint, "signature": "not base64!"}, public)[0] == "bad_signature"
    other = Ed25519PrivateKey.generate()
    assert signature_problem(mark(chain(3), 3, other), public)[0] == "foreign_key"
    assert public_key_id(public) == checkpoint["key_id"] != public_key_id(other.public_key())


def test_verify_with_checkpoints_over_plain_events():
    events = chain(6)
    marks = [mark(events, 2), mark(events, 5)]
    assert verify_with_checkpoints(events, marks, KEY.public_key()).ok
    truncated = verify_with_checkpoints(events[:4], marks, KEY.public_key())
    assert (truncated.chain.kind, truncated.chain.first_bad_seq) == ("truncated", 5)
    assert verify_with_checkpoints(events, marks, None).chain.kind == "no_public_key"
    assert verify_with_checkpoints(events, [], None).ok  # no checkpoints yet: the key is not needed


@pytest.mark.parametrize("fmt", ["csv", "jsonl"])
def test_exports_round_trip_and_verify(fmt):
    events = chain(5)
    text = ("".join(jsonl_line(e) for e in events) if fmt == "jsonl" else
            _csv(events))
    records = list(read_export(io.StringIO(text, newline=""), fmt))
    assert [r["seq"] for r in records] == [1, 2, 3, 4, 5]
    assert records[0]["actor_role"] is None and records[1]["actor_sub"] == ""  # null and empty string stay apart
    report = verify_export(records, checkpoints=[mark(events, 4)], public_key=KEY.public_key())
    assert report.ok and report.events_checked == 5
    records[2]["outcome"] = "refused"
    assert (verify_export(records).first_bad_seq, verify_export(records).kind) == (3, "altered")


def _csv(events):
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    for event in events:
        writer.writerow(csv_row(event))
    return buffer.getvalue()


def test_export_checks_links_and_order():
    events = chain(5)
    records = list(read_export(io.StringIO("".join(jsonl_line(e) for e in events)), "jsonl"))
    assert verify_export([records[0], records[2], records[4]]).ok  # a filtered export: each event alone
    swapped = [records[0], records[2], records[1]]
    assert verify_export(swapped).kind == "out_of_order"
    forged = dict(records[1], prev_hash="f" * 64)
    forged["hash"] = event_hash(forged, forged["prev_hash"])
    assert verify_export([records[0], forged]).kind == "unlinked"
    assert verify_export(records, checkpoints=[{**mark(events, 3), "head_hash": records[1]["hash"]}],
                         public_key=KEY.public_key()).kind == "bad_signature"


@pytest.mark.parametrize("text, fmt, message", [
    ("seq,at\n1,2\n", "csv", "header"),
    ('{"seq": 1}\n', "jsonl", "missing"),
    ("not json\n", "jsonl", "not JSON"),
])
def test_malformed_exports_are_named(text, fmt, message):
    with pytest.raises(ExportFormatError, match=message):
        list(read_export(io.StringIO(text), fmt))


def test_unauthenticated_refusals_are_counted_per_source_and_window():
    refusals = UnauthenticatedRefusals(60)
    assert refusals.admit("10.0.0.1", "/a", T0) is True
    assert refusals.admit("10.0.0.1", "/b", T0 + timedelta(seconds=10)) is False
    assert refusals.admit("10.0.0.1", "/c", T0 + timedelta(seconds=59)) is False
    assert refusals.admit("10.0.0.2", "/a", T0 + timedelta(seconds=5)) is True  # another source
    assert refusals.ended(T0 + timedelta(seconds=30)) == []
    # A new window opens with a refusal after the old one ended; the old one's count is kept for its summary.
    assert refusals.admit("10.0.0.1", "/d", T0 + timedelta(seconds=61)) is True
    (summary,) = refusals.ended(T0 + timedelta(seconds=70))  # 10.0.0.2 had nothing counted: no summary
    assert (summary.source, summary.count, summary.last_path) == ("10.0.0.1", 2, "/c")
    assert summary.ended - summary.started == timedelta(seconds=60)
    assert refusals.ended(T0 + timedelta(hours=1)) == []


def chained_marks(events: list[dict], seqs: list[int]) -> list[dict]:
    marks, prev = [], GENESIS_HASH
    for number, seq in enumerate(seqs, 1):
        mark_ = sign_checkpoint(KEY, seq=seq, head_hash=events[seq - 1]["hash"], event_count=seq, signed_at=T0,
                                number=number, prev_checkpoint_hash=prev)
        prev = checkpoint_hash(mark_)
        marks.append(mark_)
    return marks


def test_a_chained_checkpoint_signs_its_number_and_its_predecessor():
    events = chain(6)
    first, second = chained_marks(events, [2, 5])
    public = KEY.public_key()
    assert b'"kind":"audit-checkpoint-v2"' in signed_bytes(second) and signature_problem(second, public) is None
    for field, value in [("number", 3), ("prev_checkpoint_hash", "1" * 64)]:
        assert signature_problem({**second, field: value}, public)[0] == "bad_signature", field
    assert checkpoint_hash(first) == second["prev_checkpoint_hash"]
    assert checkpoint_hash(checkpoint_record(first)) == checkpoint_record(first)["checkpoint_hash"]  # the served form


def test_the_chain_of_checkpoints_shows_deleted_and_forked_ones():
    events = chain(6)
    marks = chained_marks(events, [2, 4, 6])
    assert checkpoint_chain_problem(in_chain_order(marks)) is None
    assert checkpoint_chain_problem(in_chain_order([marks[0], marks[2]]))[:2] == (6, "checkpoint_missing")
    assert checkpoint_chain_problem(in_chain_order(marks[1:]))[:2] == (4, "checkpoint_missing")
    again = sign_checkpoint(KEY, seq=5, head_hash=events[4]["hash"], event_count=5, signed_at=T0, number=3,
                            prev_checkpoint_hash=checkpoint_hash(marks[1]))
    assert checkpoint_chain_problem(in_chain_order([*marks, again]))[1] == "checkpoint_forked"
    assert len(in_chain_order([*marks, *[checkpoint_record(m) for m in marks]])) == 3  # a copy is the same ones
    assert verify_export(events, checkpoints=marks, public_key=KEY.public_key()).ok
    gap = verify_export(events, checkpoints=[marks[0], marks[2]], public_key=KEY.public_key())
    assert (gap.ok, gap.kind) == (False, "checkpoint_missing")
