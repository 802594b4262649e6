"""The bare baseline for bench/intake.py: a Flask app with one POST endpoint that
parses the same JSON body as the gateway's POST /api/v1/requests and does ONE
durable insert into SQLite, then answers 202.

Same durability as the gateway (WAL, synchronous=FULL, busy_timeout=5000,
BEGIN IMMEDIATE, one commit per request), and served by bench/intake.py under
the same gunicorn settings (gthread, 2 workers x 4 threads, no access log). It
is what "accept a request durably" costs with nothing else: no token check, no
validation, no rules, no outbox, no audit chain.

BASELINE_DB names the database file; the table is created on first use.
"""

from __future__ import annotations

import json
import os
import sqlite3
import threading
import uuid
from datetime import datetime, timezone

from flask import Flask, jsonify, request

DB_PATH = os.environ.get("BASELINE_DB", "baseline.db")
SCHEMA = """CREATE TABLE IF NOT EXISTS intake (
    id TEXT PRIMARY KEY,
    idempotency_key TEXT NOT NULL UNIQUE,
    payload TEXT NOT NULL,
    created_at TEXT NOT NULL
)"""

app = Flask("baseline")
_local = threading.local()  # one connection per gunicorn thread, like a pooled engine


def _connection() -> sqlite3.Connection:
    conn = getattr(_local, "conn", None)
    if conn is None:
        # isolation_level=None: we issue BEGIN IMMEDIATE ourselves, as the gateway does.
        conn = sqlite3.connect(DB_PATH, timeout=30, isolation_level=None, check_same_thread=False)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=FULL")
        conn.execute("PRAGMA busy_timeout=5000")
        conn.execute(SCHEMA)
        _local.conn = conn
    return conn


@app.post("/intake")
def intake():
    payload = request.get_json()
    row_id = str(uuid.uuid4())
    conn = _connection()
    conn.execute("BEGIN IMMEDIATE")
    try:
        conn.execute(
            "INSERT INTO intake (id, idempotency_key, payload, created_at) VALUES (?, ?, ?, ?)",
            (row_id, request.headers.get("Idempotency-Key", row_id),
             json.dumps(payload, ensure_ascii=False), datetime.now(timezone.utc).isoformat()),
        )
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    return jsonify(id=row_id, state="accepted"), 202


@app.get("/readyz")
def readyz():
    _connection()
    return jsonify(status="ready")
