"""The copy of the checkpoints outside the database: one JSON line per
checkpoint (``checkpoint_record``), appended and fsynced as each is written.

Someone with database access can delete the newest checkpoints together with
the events they sign, and re-chain events from there; the chain inside the
database then shows nothing. A copy they cannot reach (another disk, an
append-only mount, a file shipped off the host, an auditor's download of
``GET /api/v1/audit/checkpoints``) still names those heads, and
``gateway audit verify --checkpoints FILE`` holds the database against it.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Mapping

from audit.checkpoints import checkpoint_record

REQUIRED = ("seq", "head_hash", "event_count", "signed_at", "key_id", "signature")


class CheckpointFileError(ValueError):
    """The file is not a checkpoint copy this gateway writes; the message says where."""


def checkpoint_line(checkpoint: Mapping[str, Any]) -> str:
    return json.dumps(checkpoint_record(checkpoint), sort_keys=True, separators=(",", ":"), ensure_ascii=False) + "\n"


def append_checkpoint(path: Path, checkpoint: Mapping[str, Any]) -> None:
    """Append one checkpoint and fsync it (and the folder, when the file is new)."""
    data = checkpoint_line(checkpoint).encode("utf-8")
    path.parent.mkdir(parents=True, exist_ok=True)
    created = not path.exists()
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view):]
        os.fsync(fd)
    finally:
        os.close(fd)
    if created:
        folder = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(folder)
        finally:
            os.close(folder)


def read_checkpoints(text: str) -> list[dict[str, Any]]:
    """The checkpoints of a checkpoint file (JSON lines) or of the JSON that
    ``GET /api/v1/audit/checkpoints`` returns. A last line cut short (a crash
    while appending it) is left out; any other bad line is an error naming it."""
    stripped = text.strip()
    if not stripped:
        return []
    try:
        whole = json.loads(stripped)
    except json.JSONDecodeError:
        whole = None
    if isinstance(whole, dict) and isinstance(whole.get("checkpoints"), list):
        records, where = whole["checkpoints"], "checkpoint"
    else:
        records, where = [], "line"
        lines = text.split("\n")
        for number, line in enumerate(lines, 1):
            if not line.strip():
                continue
            try:
                records.append(json.loads(line))
            except json.JSONDecodeError as exc:
                if number == len(lines) and not text.endswith("\n"):
                    break  # torn by a crash mid-append: it was never fsynced as written
                raise CheckpointFileError(f"line {number}: not JSON ({exc})") from None
    for number, record in enumerate(records, 1):
        missing = [name for name in REQUIRED if not isinstance(record, dict) or name not in record]
        if missing:
            raise CheckpointFileError(f"{where} {number}: missing {', '.join(missing)}")
    return records


def load_checkpoint_file(path: Path) -> list[dict[str, Any]]:
    try:
        return read_checkpoints(path.read_text(encoding="utf-8"))
    except CheckpointFileError as exc:
        raise CheckpointFileError(f"{path}: {exc}") from None
