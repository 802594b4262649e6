"""Wires the audit log into the app: the keyed-hash key from settings, one
``AuditLog`` per process, the checkpoint writer, and the aggregation of
unauthenticated refusals (gateway/auditing/refusals.py)."""

from __future__ import annotations

from datetime import datetime

from flask import Flask, current_app

from audit.store import AuditLog
from gateway.auditing.checkpointing import CheckpointWriter
from gateway.auditing.refusals import UnauthenticatedRefusals
from gateway.auth.keys import read_subject_key
from gateway.db import Database
from gateway.logs import redact_for_audit
from gateway.timeutil import utc_now


def init_app(app: Flask) -> None:
    settings = app.config["SETTINGS"]
    app.extensions["audit"] = AuditLog(read_subject_key(settings))
    app.extensions["audit_checkpoints"] = CheckpointWriter(app.extensions["db"], settings, app.extensions["audit"])
    app.extensions["unauthenticated_refusals"] = UnauthenticatedRefusals(settings.audit.unauthenticated_audit_window_seconds)


def get_audit() -> AuditLog:
    return current_app.extensions["audit"]


def flush_refusal_summaries(db: Database, audit: AuditLog, refusals: UnauthenticatedRefusals,
                            now: datetime | None = None) -> int:
    """Write one summary event per ended window of unauthenticated refusals; return how many."""
    summaries = refusals.ended(now or utc_now())
    if summaries:
        with db.transaction() as session:
            for s in summaries:
                audit.record(session, action="api.unauthenticated", outcome="refused_aggregated", details={
                    "source": s.source, "count": s.count, "window_start": s.started.isoformat(),
                    "window_end": s.ended.isoformat(), "last_path": redact_for_audit(s.last_path, 200),
                    "note": "401s (and 429s) after the first of this window from this source, counted instead of audited one by one",
                })
    return len(summaries)
