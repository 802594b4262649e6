"""An agency that takes batch files: watches ``inbox/``, answers into ``outbox/``.

The agency's own reading of the batch file format (docs/agencies/sftp-batch.md),
written apart from the gateway's transport so a mistake on either side shows up
as a failing exchange. ``handler(body) -> answer body`` is the agency's logic for
one message (e.g. ``RealEstateRegistry.handle``); this module only does files.

Per complete request file ``NAME.req`` (its ``NAME.req.chk`` present):

1. the checksum and record count are checked; a file that fails is moved to
   ``rejected/`` and answered with nothing (logged);
2. the knobs: latency before answering, and a failure rate (a failing file is
   left in ``inbox/`` and answered on a later poll, never lost);
3. ``handler`` runs per line; ``outbox/NAME.res`` then ``NAME.res.chk`` are
   written as ``.part`` and renamed; the request files move to ``processed/``.

Test switches make the next result file corrupt once (bad checksum, or a control
file that miscounts the records).
"""

from __future__ import annotations

import hashlib
import logging
import os
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from sandboxes.server import FaultInjector, FaultKnobs

__all__ = ["BatchAgencyProcessor", "BatchAgencyCounters"]

log = logging.getLogger(__name__)

CORRUPTIONS = ("checksum", "count")


@dataclass
class BatchAgencyCounters:
    files_answered: int = 0
    records_answered: int = 0
    files_rejected: int = 0
    failures_injected: int = 0
    corrupt_written: int = 0


class _RequestFileBad(ValueError):
    pass


def _check_request(data: bytes, control: bytes) -> list[tuple[bytes, bytes]]:
    """The (message id, body) pairs of a request file, or _RequestFileBad."""
    fields = dict(line.split("=", 1) for line in control.decode("ascii", "replace").splitlines() if "=" in line)
    if fields.get("sha256") != hashlib.sha256(data).hexdigest():
        raise _RequestFileBad("checksum does not match the control file")
    lines = data.split(b"\n")
    if lines[-1] != b"":
        raise _RequestFileBad("last line is not terminated by LF")
    pairs = []
    for number, line in enumerate(lines[:-1], start=1):
        message_id, tab, body = line.partition(b"\t")
        if not tab or not message_id:
            raise _RequestFileBad(f"line {number} is not <message id> TAB <body>")
        pairs.append((message_id, body))
    if fields.get("records") != str(len(pairs)):
        raise _RequestFileBad(f"control file says records={fields.get('records')}, file has {len(pairs)}")
    return pairs


def _write_whole(path: Path, data: bytes) -> None:
    part = path.with_name(path.name + ".part")
    part.write_bytes(data)
    os.replace(part, path)


class BatchAgencyProcessor:
    def __init__(self, folder: Path, handler: Callable[[bytes], bytes], knobs: FaultKnobs | None = None,
                 poll_interval: float = 0.05):
        self.folder = Path(folder)
        self.handler = handler
        self.poll_interval = poll_interval
        self.counters = BatchAgencyCounters()
        self._faults = FaultInjector(knobs)
        self._corrupt_next: list[str] = []
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self.inbox, self.outbox = self.folder / "inbox", self.folder / "outbox"
        self.processed, self.rejected = self.folder / "processed", self.folder / "rejected"

    def corrupt_next(self, kind: str) -> None:
        """Make the next result file corrupt once: ``checksum`` or ``count``."""
        if kind not in CORRUPTIONS:
            raise ValueError(f"kind must be one of {CORRUPTIONS}, got {kind!r}")
        with self._lock:
            self._corrupt_next.append(kind)

    def start(self) -> "BatchAgencyProcessor":
        if self._thread is not None:
            raise RuntimeError("a BatchAgencyProcessor can be started once")
        for folder in (self.inbox, self.outbox, self.processed, self.rejected):
            folder.mkdir(parents=True, exist_ok=True)
        self._thread = threading.Thread(target=self._loop, name=f"batch-agency-{self.folder.name}", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stopping.set()
        if self._thread is not None:
            self._thread.join(timeout=10)

    def __enter__(self) -> "BatchAgencyProcessor":
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def _loop(self) -> None:
        while not self._stopping.is_set():
            try:
                self.poll_once()
            except Exception:  # noqa: BLE001 - an agency keeps running; the log says what broke
                log.exception("batch agency at %s failed a poll", self.folder)
            self._stopping.wait(self.poll_interval)

    def poll_once(self) -> int:
        """Answer every complete request file waiting, oldest first; return how many were answered."""
        ready = [p for p in self.inbox.glob("*.req") if p.with_name(p.name + ".chk").exists()]
        answered = 0
        for request in sorted(ready, key=lambda p: (p.stat().st_mtime, p.name)):
            if self._stopping.is_set():
                break
            answered += self._answer_file(request)
        return answered

    def _answer_file(self, request: Path) -> int:
        control = request.with_name(request.name + ".chk")
        try:
            pairs = _check_request(request.read_bytes(), control.read_bytes())
        except _RequestFileBad as exc:
            log.warning("request file %s rejected, not answered: %s", request.name, exc)
            os.replace(request, self.rejected / request.name)
            os.replace(control, self.rejected / control.name)
            with self._lock:
                self.counters.files_rejected += 1
            return 0
        if self._faults.apply():  # the latency knob sleeps here, before answering
            with self._lock:
                self.counters.failures_injected += 1
            return 0  # left in inbox/: answered on a later poll
        lines = []
        for message_id, body in pairs:
            answer = self.handler(body)
            if b"\n" in answer:
                raise ValueError("handler answered more than one line")
            lines.append(message_id + b"\t" + answer + b"\n")
        data = b"".join(lines)
        records, sha256 = len(lines), hashlib.sha256(data).hexdigest()
        with self._lock:
            corruption = self._corrupt_next.pop(0) if self._corrupt_next else None
            if corruption:
                self.counters.corrupt_written += 1
        if corruption == "checksum":
            sha256 = hashlib.sha256(data + b"corrupt").hexdigest()
        elif corruption == "count":
            records += 1
        result_name = request.name[: -len(".req")] + ".res"
        _write_whole(self.outbox / result_name, data)
        _write_whole(self.outbox / (result_name + ".chk"), f"records={records}\nsha256={sha256}\n".encode("ascii"))
        os.replace(request, self.processed / request.name)
        os.replace(control, self.processed / control.name)
        with self._lock:
            self.counters.files_answered += 1
            self.counters.records_answered += len(lines)
        return 1
