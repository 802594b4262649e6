"""When checkpoints are written: every ``checkpoint_every_events`` events or
``checkpoint_every_seconds`` seconds (from the delivery worker's loop, outside
any request's transaction), and on demand (`gateway audit checkpoint`).

The check costs two indexed one-row reads, and runs at most once a second per
process, so the loop can call it on every pass.

Each checkpoint, once committed, is appended (fsynced) to the checkpoint file
outside the database (``[audit].checkpoint_file``). A crash between the commit
and the append leaves that one checkpoint in the database only; the next one
links to it, and verification takes the file and the database together.
"""

from __future__ import annotations

import logging
import threading
import time
from datetime import datetime
from typing import Any

from audit.checkpoint_file import append_checkpoint
from audit.checkpoint_store import head_seq, last_checkpoint, write_checkpoint
from audit.store import AuditLog
from gateway.auth.keys import read_checkpoint_key
from gateway.db import Database
from gateway.errors import ConfigError
from gateway.settings import Settings
from gateway.timeutil import as_utc, utc_now

log = logging.getLogger(__name__)


def checkpoint_due(*, head: int, last_seq: int | None, last_signed_at: datetime | None, now: datetime,
                   every_events: int, every_seconds: float) -> bool:
    """Whether the head has moved far or long enough since the last checkpoint."""
    if head == 0 or (last_seq is not None and head <= last_seq):
        return False
    if last_seq is None or last_signed_at is None:
        return True
    return head - last_seq >= every_events or (now - as_utc(last_signed_at)).total_seconds() >= every_seconds


class CheckpointWriter:
    def __init__(self, db: Database, settings: Settings, audit: AuditLog | None = None):
        self._db, self._settings = db, settings
        self._audit = audit  # to integrate pending events before signing on demand
        self._key: Any = None
        self._key_stamp: tuple[int, int] | None = None
        self._lock = threading.Lock()
        self._next_look = 0.0
        self._warned = False

    def _signing_key(self) -> Any:
        """The key, read again when its file changed (gateway keys rotate --checkpoint):
        a running gateway signs its next checkpoint with the new key, no restart."""
        path = self._settings.checkpoint_key_path
        try:
            stamp = (path.stat().st_mtime_ns, path.stat().st_size)
        except FileNotFoundError:
            stamp = None
        if self._key is None or stamp != self._key_stamp:
            self._key = read_checkpoint_key(self._settings)  # ConfigError if missing
            self._key_stamp = stamp
        return self._key

    def write_now(self, *, force: bool = False) -> dict[str, Any] | None:
        """Sign the current head now; None if the log is empty or already checkpointed there."""
        key = self._signing_key()
        if self._audit is not None:  # on demand, sign everything written so far, not what the sequencer reached
            with self._db.transaction() as session:
                self._audit.integrate_pending(session)
        with self._db.transaction() as session:
            checkpoint = write_checkpoint(session, key, now=utc_now(), force=force)
        if checkpoint is not None:
            append_checkpoint(self._settings.checkpoint_file_path, checkpoint)
        return checkpoint

    def maybe_write(self) -> dict[str, Any] | None:
        """Write a checkpoint if one is due (a housekeeper task)."""
        with self._lock:
            if time.monotonic() < self._next_look:
                return None
            self._next_look = time.monotonic() + 1.0
        audit = self._settings.audit
        with self._db.reading() as session:
            last = last_checkpoint(session)
            head = head_seq(session)
        due = checkpoint_due(head=head, last_seq=last[0] if last else None, last_signed_at=last[1] if last else None,
                             now=utc_now(), every_events=audit.checkpoint_every_events,
                             every_seconds=audit.checkpoint_every_seconds)
        if not due:
            return None
        try:
            return self.write_now()
        except ConfigError as exc:
            if not self._warned:  # once per process: the loop runs every fraction of a second
                log.error("audit checkpoints are not being written: %s", exc)
                self._warned = True
            return None
        except OSError as exc:  # the database has it; the outside copy is behind until the file is writable
            log.error("audit checkpoint not appended to %s: %s", self._settings.checkpoint_file_path, exc)
            return None
