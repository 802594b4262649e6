from __future__ import annotations

from typing import Any

from flask import Blueprint, Flask, Response, current_app, jsonify
from prometheus_client import CONTENT_TYPE_LATEST
from sqlalchemy import text

from gateway.db import get_db
from gateway.deliveries.metrics import render as render_metrics
from gateway.migrate import current_revision, head_revision

blp = Blueprint("ops", __name__)


@blp.get("/healthz")
def healthz() -> Any:
    """The process is up."""
    return jsonify(status="ok")


@blp.get("/readyz")
def readyz() -> Any:
    """Ready to take requests: the database answers and its schema is current."""
    problems = []
    db = get_db()
    try:
        with db.engine.connect() as conn:
            conn.execute(text("SELECT 1"))
            revision = current_revision(conn)
        if revision != head_revision():
            problems.append(f"database schema is at {revision or 'nothing'}, expected {head_revision()}: run `gateway db upgrade`")
    except Exception as exc:  # any failure to reach the database means not ready
        problems.append(f"database unreachable: {type(exc).__name__}")
    worker = current_app.extensions.get("worker")
    body = {"status": "ready" if not problems else "not_ready", "problems": problems,
            "agencies": sorted(current_app.extensions["registry"].agencies),
            "workers_running": bool(worker and worker.running)}
    return jsonify(body), 200 if not problems else 503


@blp.get("/metrics")
def metrics() -> Any:
    """Prometheus exposition: per-agency deliveries by state, queue depth and oldest due
    age (from the database), latency, retries and breaker state (from the processes).
    Unauthenticated like /healthz; it carries no subject, case or identity number."""
    settings = current_app.config["SETTINGS"]
    body = render_metrics(db=get_db(), agency_ids=current_app.extensions["registry"].agencies,
                          process_registry=current_app.extensions["metrics_registry"],
                          multiproc_dir=settings.prometheus_multiproc_dir)
    return Response(body, headers={"Content-Type": CONTENT_TYPE_LATEST})


def init_app(app: Flask) -> None:
    app.register_blueprint(blp)
