"""Archive files of old events, and their check, over plain data and files.

An archive file is JSON lines: a header line
``{"archive": {"first_seq", "last_seq", "last_hash", "prev_file_sha256", "format"}}``
then one event per line in the export's JSON-lines form (audit/export.py).
The file's SHA-256 covers the header, and the header names the previous
file's SHA-256, so the files form a chain of their own; the database keeps
the same link in ``audit_archives`` (file name, first/last seq, last event
hash, file digest, previous file digest). The live log goes on from the last
archived event's hash, so the archived past and the live log verify as one
chain.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Iterator, Mapping, Sequence

from audit.chain import GENESIS_HASH, ChainReport, verify_chain
from audit.export import ExportFormatError, jsonl_line, read_jsonl

ARCHIVE_FORMAT = "audit-archive-v1"
NO_PREVIOUS_FILE = "0" * 64


def archive_file_name(first_seq: int, last_seq: int) -> str:
    return f"audit-{first_seq:012d}-{last_seq:012d}.jsonl"


def write_archive_file(directory: Path, events: Sequence[Mapping[str, Any]], prev_file_sha256: str) -> dict[str, Any]:
    """Write the events (a contiguous run, oldest first) to a new file, durably
    (written to ``.part``, fsynced, then renamed); return its archive record."""
    first, last = events[0], events[-1]
    header = {"archive": {"format": ARCHIVE_FORMAT, "first_seq": first["seq"], "last_seq": last["seq"],
                          "last_hash": last["hash"], "prev_file_sha256": prev_file_sha256}}
    name = archive_file_name(first["seq"], last["seq"])
    directory.mkdir(parents=True, exist_ok=True)
    part = directory / (name + ".part")
    digest = hashlib.sha256()
    with part.open("wb") as fh:
        for line in [json.dumps(header, sort_keys=True, separators=(",", ":")) + "\n", *map(jsonl_line, events)]:
            data = line.encode("utf-8")
            digest.update(data)
            fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(part, directory / name)
    dir_fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)
    return {"file_name": name, "first_seq": first["seq"], "last_seq": last["seq"], "last_hash": last["hash"],
            "file_sha256": digest.hexdigest(), "prev_file_sha256": prev_file_sha256}


@dataclass(frozen=True)
class ArchiveReport:
    chain: ChainReport          # the archived events as one chain from the genesis
    files_checked: int
    problem: str | None = None  # a file-level break (digest, header, missing file)

    @property
    def ok(self) -> bool:
        return self.problem is None and self.chain.ok


def _file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _events_of(path: Path) -> tuple[dict[str, Any], Iterator[dict[str, Any]]]:
    fh = path.open("r", encoding="utf-8")
    header_line = fh.readline()
    try:
        header = json.loads(header_line)["archive"]
    except (json.JSONDecodeError, KeyError, TypeError):
        fh.close()
        raise ExportFormatError(f"{path.name}: line 1 is not an archive header") from None

    def events() -> Iterator[dict[str, Any]]:
        with fh:
            yield from read_jsonl(fh)

    return header, events()


def verify_archive(directory: Path, records: Iterable[Mapping[str, Any]] | None = None) -> ArchiveReport:
    """Check every archive file in ``directory``: each file's digest chained to the
    previous one, each header against its content, and all their events as one
    chain from the genesis. With ``records`` (the database's ``audit_archives``
    rows), each record must match its file's name, range, last hash and digest."""
    paths = sorted(directory.glob("audit-*.jsonl"))
    by_name = {p.name: p for p in paths}
    if records is not None:
        for record in records:
            path = by_name.get(record["file_name"])
            if path is None:
                return ArchiveReport(ChainReport(True, 0, 0, GENESIS_HASH), 0,
                                     f"archive file {record['file_name']} (events {record['first_seq']}.."
                                     f"{record['last_seq']}) recorded in the database is not in {directory}")
            if _file_sha256(path) != record["file_sha256"]:
                return ArchiveReport(ChainReport(True, 0, 0, GENESIS_HASH), 0,
                                     f"archive file {path.name} was modified: its SHA-256 is not the recorded one")
    prev_digest, seq, head_hash, checked_events, files = NO_PREVIOUS_FILE, 1, GENESIS_HASH, 0, 0
    for path in paths:
        try:
            header, events = _events_of(path)
            if header.get("prev_file_sha256") != prev_digest:
                return ArchiveReport(ChainReport(True, checked_events, seq - 1, head_hash), files,
                                     f"archive file {path.name} does not follow the previous file: "
                                     "its prev_file_sha256 is not that file's SHA-256")
            report = verify_chain(events, start_seq=seq, start_hash=head_hash)
        except ExportFormatError as exc:
            return ArchiveReport(ChainReport(True, checked_events, seq - 1, head_hash), files, str(exc))
        if not report.ok:
            shifted = ChainReport(False, checked_events + report.events_checked, report.head_seq, report.head_hash,
                                  report.first_bad_seq, f"{path.name}: {report.problem}", report.kind)
            return ArchiveReport(shifted, files)
        if (report.head_seq, report.head_hash) != (header.get("last_seq"), header.get("last_hash")):
            return ArchiveReport(ChainReport(True, checked_events, seq - 1, head_hash), files,
                                 f"archive file {path.name}: its events end at {report.head_seq}, "
                                 f"its header says {header.get('last_seq')}")
        prev_digest, seq, head_hash = _file_sha256(path), report.head_seq + 1, report.head_hash
        checked_events, files = checked_events + report.events_checked, files + 1
    return ArchiveReport(ChainReport(True, checked_events, seq - 1, head_hash), files)


def archived_hashes(directory: Path, seqs: set[int]) -> dict[int, str]:
    """The hashes of the given seqs found in the archive files (for checkpoints
    whose events were archived)."""
    found: dict[int, str] = {}
    for path in sorted(directory.glob("audit-*.jsonl")):
        _, events = _events_of(path)
        for event in events:
            if event["seq"] in seqs:
                found[event["seq"]] = event["hash"]
    return found
