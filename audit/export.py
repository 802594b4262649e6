"""Exports of the log that verify offline, as pure functions over text.

Two formats carry the same fields: every hashed field, ``prev_hash`` and
``hash``, with ``at`` in the hashed form (RFC 3339 UTC with microseconds).

* JSON lines: one event per line, ``details`` as an object.
* CSV: a header line, then one event per line; ``details`` as canonical JSON;
  a null is written ``\\N`` (PostgreSQL's COPY convention), so that it stays
  apart from an empty string.

``verify_export`` recomputes every event's hash from the file alone. A
contiguous export (no filters) is checked as a chain from its first event's
``prev_hash``; a filtered export is checked event by event, and links are
checked wherever two exported events are neighbours. Given the checkpoints
(``GET /api/v1/audit/checkpoints``) and the public key, any checkpointed head
inside the exported range must match too.
"""

from __future__ import annotations

import csv
import json
from typing import Any, Iterable, Iterator, Mapping


from audit.chain import HASHED_FIELDS, ChainReport, event_hash, format_time
from audit.checkpoints import PublicKeys, checkpoint_chain_problem, in_chain_order, signature_problem

CSV_COLUMNS = (*HASHED_FIELDS, "prev_hash", "hash")
CSV_NULL = "\\N"
_INT_FIELDS = ("seq",)


class ExportFormatError(ValueError):
    """The file is not an export this gateway writes; the message says where."""


def export_record(row: Mapping[str, Any]) -> dict[str, Any]:
    record = {name: row[name] for name in CSV_COLUMNS}
    if not isinstance(record["at"], str):
        record["at"] = format_time(record["at"])
    return record


def jsonl_line(row: Mapping[str, Any]) -> str:
    return json.dumps(export_record(row), ensure_ascii=False, sort_keys=True, separators=(",", ":")) + "\n"


def csv_row(row: Mapping[str, Any]) -> list[str]:
    record = export_record(row)
    cells = []
    for name in CSV_COLUMNS:
        value = record[name]
        if value is None:
            cells.append(CSV_NULL)
        elif name == "details":
            cells.append(json.dumps(value, ensure_ascii=False, sort_keys=True, separators=(",", ":")))
        else:
            cells.append(str(value))
    return cells


def read_jsonl(lines: Iterable[str]) -> Iterator[dict[str, Any]]:
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            raise ExportFormatError(f"line {number}: not JSON ({exc})") from None
        missing = [name for name in CSV_COLUMNS if name not in record]
        if missing:
            raise ExportFormatError(f"line {number}: missing {', '.join(missing)}")
        yield record


def read_csv(lines: Iterable[str]) -> Iterator[dict[str, Any]]:
    reader = csv.reader(lines)
    header = next(reader, None)
    if header is None or tuple(header) != CSV_COLUMNS:
        raise ExportFormatError(f"line 1: the header must be {','.join(CSV_COLUMNS)}")
    for number, cells in enumerate(reader, 2):
        if len(cells) != len(CSV_COLUMNS):
            raise ExportFormatError(f"line {number}: {len(cells)} cells, expected {len(CSV_COLUMNS)}")
        record: dict[str, Any] = {}
        for name, cell in zip(CSV_COLUMNS, cells, strict=False):
            if cell == CSV_NULL:
                record[name] = None
            elif name in _INT_FIELDS:
                try:
                    record[name] = int(cell)
                except ValueError:
                    raise ExportFormatError(f"line {number}: {name} must be an integer") from None
            elif name == "details":
                try:
                    record[name] = json.loads(cell)
                except json.JSONDecodeError:
                    raise ExportFormatError(f"line {number}: details must be JSON") from None
            else:
                record[name] = cell
        yield record


def read_export(lines: Iterable[str], fmt: str) -> Iterator[dict[str, Any]]:
    if fmt == "jsonl":
        return read_jsonl(lines)
    if fmt == "csv":
        return read_csv(lines)
    raise ExportFormatError(f"unknown export format {fmt!r} (csv or jsonl)")


def verify_export(records: Iterable[Mapping[str, Any]], *, checkpoints: Iterable[Mapping[str, Any]] = (),
                  public_key: PublicKeys | None = None) -> ChainReport:
    """Check an export from its own content (see the module docstring)."""
    marks = {}
    checkpoints = in_chain_order(checkpoints)
    for checkpoint in checkpoints:
        if public_key is None:
            raise ValueError("checking checkpoints needs the checkpoint public key")
        problem = signature_problem(checkpoint, public_key)
        if problem:
            return ChainReport(False, 0, 0, "", int(checkpoint["seq"]), problem[1], problem[0])
        marks[int(checkpoint["seq"])] = checkpoint["head_hash"]
    broken = checkpoint_chain_problem(checkpoints)
    if broken:
        return ChainReport(False, 0, 0, "", broken[0], broken[2], broken[1])
    previous: Mapping[str, Any] | None = None
    checked, head_seq, head_hash = 0, 0, ""
    for record in records:
        seq = record["seq"]
        if previous is not None and seq <= previous["seq"]:
            return ChainReport(False, checked, head_seq, head_hash, seq,
                               f"event {seq} comes after event {previous['seq']} in the file", "out_of_order")
        if previous is not None and seq == previous["seq"] + 1 and record["prev_hash"] != previous["hash"]:
            return ChainReport(False, checked, head_seq, head_hash, seq,
                               f"event {seq} does not link to event {seq - 1}: its prev_hash is not that event's hash",
                               "unlinked")
        if event_hash(record, record["prev_hash"]) != record["hash"]:
            return ChainReport(False, checked, head_seq, head_hash, seq,
                               f"event {seq} was altered: its content does not match its hash", "altered")
        if seq in marks and marks[seq] != record["hash"]:
            return ChainReport(False, checked, head_seq, head_hash, seq,
                               f"event {seq} has another hash than its signed checkpoint", "rewritten")
        previous, checked, head_seq, head_hash = record, checked + 1, seq, record["hash"]
    return ChainReport(True, checked, head_seq, head_hash)
