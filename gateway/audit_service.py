"""Wires the audit log into the app: the keyed-hash key from settings, one
``AuditLog`` per process."""

from __future__ import annotations

from flask import Flask, current_app

from audit.store import AuditLog
from gateway.auth.keys import read_subject_key


def init_app(app: Flask) -> None:
    app.extensions["audit"] = AuditLog(read_subject_key(app.config["SETTINGS"]))


def get_audit() -> AuditLog:
    return current_app.extensions["audit"]
