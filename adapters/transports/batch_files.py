"""The batch file format (docs/agencies/sftp-batch.md), as pure functions over bytes.

A data file is UTF-8 with LF line ends, one record per line:
``<message id> TAB <body> LF``. Beside it a control file, written after the data
file is complete, says ``records=<n>`` and ``sha256=<hex of the data file>``; a
reader that finds the control file knows the data file is whole, and checks it.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from typing import Sequence

from adapters.errors import OutgoingInvalid
from adapters.interfaces import BatchRecord

REQUEST_SUFFIX = ".req"
RESULT_SUFFIX = ".res"
CONTROL_SUFFIX = ".chk"
PART_SUFFIX = ".part"

_OPERATION = re.compile(r"^[A-Za-z0-9-]{1,40}$")
_SHA256_HEX = re.compile(r"^[0-9a-f]{64}$")


class BatchFileCorrupt(ValueError):
    """A data or control file that cannot be applied; the message says why."""


@dataclass(frozen=True)
class ControlFile:
    records: int
    sha256: str


def check_operation(operation: str) -> str:
    # The operation becomes part of a file name: letters, digits and '-' only
    # ('_' separates the name's parts).
    if not isinstance(operation, str) or not _OPERATION.match(operation):
        raise OutgoingInvalid(f"batch operation {operation!r} must be 1 to 40 letters, digits or '-'")
    return operation


def render_records(records: Sequence[BatchRecord]) -> bytes:
    """The data file's bytes. Raises OutgoingInvalid for a record that cannot be one line."""
    if not records:
        raise OutgoingInvalid("a batch file needs at least one record")
    lines: list[bytes] = []
    for index, record in enumerate(records):
        message_id = record.message_id
        if not message_id or any(c in message_id for c in "\t\r\n"):
            raise OutgoingInvalid(f"record {index}: message id must be non-empty without TAB, CR or LF")
        body = record.body
        if not isinstance(body, (bytes, bytearray)) or b"\n" in body:
            raise OutgoingInvalid(f"record {index} ({message_id}): body must be bytes on one line (no LF)")
        try:
            body.decode("utf-8")
        except UnicodeDecodeError:
            raise OutgoingInvalid(f"record {index} ({message_id}): body is not UTF-8") from None
        lines.append(message_id.encode("utf-8") + b"\t" + bytes(body) + b"\n")
    return b"".join(lines)


def render_control(data: bytes, records: int) -> bytes:
    return f"records={records}\nsha256={hashlib.sha256(data).hexdigest()}\n".encode("ascii")


def parse_control(raw: bytes) -> ControlFile:
    fields: dict[str, str] = {}
    try:
        text = raw.decode("ascii")
    except UnicodeDecodeError:
        raise BatchFileCorrupt("control file is not ASCII") from None
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        key, sep, value = line.partition("=")
        if not sep or key not in ("records", "sha256") or key in fields:
            raise BatchFileCorrupt(f"control file line {number}: expected 'records=<n>' or 'sha256=<hex>' once each")
        fields[key] = value.strip()
    if set(fields) != {"records", "sha256"}:
        raise BatchFileCorrupt("control file must have a records= and a sha256= line")
    if not fields["records"].isdigit():
        raise BatchFileCorrupt(f"control file records={fields['records']!r} is not a count")
    if not _SHA256_HEX.match(fields["sha256"]):
        raise BatchFileCorrupt("control file sha256= is not 64 lowercase hex digits")
    return ControlFile(records=int(fields["records"]), sha256=fields["sha256"])


def parse_records(data: bytes, control: ControlFile) -> tuple[BatchRecord, ...]:
    """Check a data file against its control file and split it into records.

    All or nothing: any mismatch raises BatchFileCorrupt and no record is returned.
    """
    actual = hashlib.sha256(data).hexdigest()
    if actual != control.sha256:
        raise BatchFileCorrupt(f"checksum mismatch: control file says {control.sha256}, data file hashes to {actual}")
    if data and not data.endswith(b"\n"):
        raise BatchFileCorrupt("data file does not end with LF (truncated last line?)")
    lines = data.split(b"\n")[:-1] if data else []
    if len(lines) != control.records:
        raise BatchFileCorrupt(f"record count mismatch: control file says {control.records}, data file has {len(lines)}")
    records = []
    for number, line in enumerate(lines, start=1):
        message_id, tab, body = line.partition(b"\t")
        if not tab or not message_id:
            raise BatchFileCorrupt(f"line {number} is not a record (<message id> TAB <body>)")
        try:
            text_id = message_id.decode("utf-8")
            body.decode("utf-8")
        except UnicodeDecodeError:
            raise BatchFileCorrupt(f"line {number} is not UTF-8") from None
        if "\r" in text_id:
            raise BatchFileCorrupt(f"line {number}: message id holds a CR")
        records.append(BatchRecord(message_id=text_id, body=body))
    return tuple(records)
