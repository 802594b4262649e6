"""The batch API (集中查控): submit many debtors at once, follow progress, one merged report."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from flask import Flask, Response, current_app, request
from marshmallow import Schema, fields

from gateway.api import ApiBlueprint, roles_required
from gateway.auditing.log import get_audit
from gateway.auth.access import current_principal
from gateway.batches import services
from gateway.batches.models import BatchLine
from gateway.db import get_db
from gateway.errors import InvalidInput
from gateway.reports import render
from gateway.reports.services import build_report
from gateway.requests.services import payload_digest
from gateway.requests.views import IdempotencyHeaderSchema
from gateway.timeutil import court_date
from schemas.canonical import BatchOutSchema, BatchSubmissionSchema, ErrorSchema

blp = ApiBlueprint("batches", __name__, url_prefix="/api/v1",
                   description="Batch submission (集中查控): up to 1,000 debtors of the court's cases at once")

_BODY = {"required": True, "content": {
    "application/json": {"schema": {"$ref": "#/components/schemas/BatchSubmission"}},
    "text/csv": {"schema": {"type": "string"}, "example": "case_number,kind,name,id_number,categories\n"
                 "(2024)浙0102执1234号,person,张三,330102198703151157,deposit real_estate\n"}}}


class BatchArgsSchema(Schema):
    lines = fields.Bool(load_default=False, metadata={"description": "true: each line with its state and request"})


def _submitted_lines() -> Any:
    if request.mimetype == "text/csv":
        try:
            return services.lines_from_csv(request.get_data(cache=False).decode("utf-8"))
        except UnicodeDecodeError:
            raise InvalidInput("the CSV is not UTF-8", fields={"_body": ["encode the file as UTF-8"]}) from None
    if request.mimetype != "application/json":
        raise InvalidInput(f"{request.mimetype or 'no Content-Type'} is not a batch", fields={
            "Content-Type": ["must be application/json or text/csv"]})
    body = request.get_json(silent=True)
    if body is None:
        raise InvalidInput("the body is not valid JSON", fields={"_body": ["a JSON object with lines"]})
    return body


@blp.route("/batches", methods=["POST"])
@roles_required("court_officer")
@blp.arguments(IdempotencyHeaderSchema(), location="headers")
@blp.doc(requestBody=_BODY)
@blp.response(202, BatchOutSchema, description="accepted whole: each line's inquiry is made next")
@blp.alt_response(400, schema=ErrorSchema, description="a field of a line breaks its rule (named lines[i].field); "
                  "nothing was accepted")
@blp.alt_response(409, schema=ErrorSchema, description="the Idempotency-Key was used with another batch")
@blp.alt_response(422, schema=ErrorSchema, description="a line is not a debtor of a case of the caller's court "
                  "(named lines[i]), or asks a category no agency answers; nothing was accepted")
@blp.alt_response(429, schema=ErrorSchema, description="the batch would pass the court's hourly or the officer's "
                  "daily batch limit")
def submit_batch(headers: dict[str, Any]) -> Any:
    """Submit up to 1,000 lines (a debtor of one of the court's cases each) as JSON
    (``{"lines": [...]}``) or CSV (``case_number,kind,name,id_number[,categories]``).
    Every line is checked first; one bad line refuses the batch, naming each bad line."""
    principal = current_principal()
    raw = _submitted_lines()
    digest = payload_digest(raw)
    lines = services.check_lines(raw)
    settings = current_app.config["SETTINGS"]
    now = current_app.extensions["clock"]()
    with get_db().transaction() as session:
        replay = services.find_replay(session, principal, headers["idempotency_key"], digest)
        if replay is not None:
            return services.progress_view(session, replay, with_lines=False)
        services.check_rules(session, principal, lines, current_app.extensions["registry"])
        services.check_capacity(session, principal, len(lines), settings.limits, now)
        batch = services.submit(session, principal, lines, key=headers["idempotency_key"], digest=digest, now=now,
                                audit=get_audit())
        body = services.progress_view(session, batch, with_lines=False)
    current_app.extensions["batch_expander"].nudge()  # a housekeeper task: in this process, make the lines at its next look
    current_app.extensions["worker"].wake()
    return body, 202


@blp.route("/batches/<batch_id>", methods=["GET"])
@roles_required("court_officer", "approver", "admin")
@blp.arguments(BatchArgsSchema(), location="query")
@blp.response(200, BatchOutSchema)
@blp.alt_response(404, schema=ErrorSchema, description="no such batch for the caller's court")
def batch_progress(args: dict[str, Any], batch_id: str) -> Any:
    """Progress: n of N accepted, answered, failed; with ``lines=true`` each line."""
    principal = current_principal()
    with get_db().transaction() as session:
        batch = services.batch_of(session, batch_id, principal)
        return services.progress_view(session, batch, with_lines=args["lines"])


@blp.route("/batches/<batch_id>/report", methods=["GET"])
@roles_required("court_officer", "approver", "admin")
@blp.doc(responses={"200": {"description": "one CSV for the whole batch", "content": {
    "text/csv": {"schema": {"type": "string"}, "example": ",".join(render.BATCH_COLUMNS + render.CSV_COLUMNS)}}}})
@blp.alt_response(404, schema=ErrorSchema, description="no such batch for the caller's court")
def batch_report(batch_id: str) -> Any:
    """One merged asset report (CSV): each line's assets, totals and gaps, prefixed with
    the line, case and debtor (masked); a line without a report says why."""
    principal = current_principal()
    today = court_date(current_app.extensions["clock"]())
    rules = current_app.extensions["control_rules"]
    with get_db().transaction() as session:
        batch = services.batch_of(session, batch_id, principal)
        view = services.progress_view(session, batch, with_lines=True)
        entries = []
        for line in view["lines"]:
            report = None
            if line["state"] == "accepted":
                row = session.get_one(BatchLine, (batch.id, line["line"]))
                report, _subject = build_report(session, line["case_number"], row.id_number, principal,
                                                today=today, rules=rules)
            entries.append((line, report))
        get_audit().record(session, action="report.read", outcome="ok", actor=principal,
                           details={"batch": batch.id, "lines": len(entries), "format": "text/csv"})
    content = render.batch_report_csv(entries).encode("utf-8-sig")
    return Response(content, mimetype="text/csv", headers={
        "Content-Disposition": f"attachment; filename*=UTF-8''{quote(f'batch-report-{batch.id}.csv')}",
        "Cache-Control": "private, no-store"})


def init_app(app: Flask, api: Any) -> None:
    api.register_blueprint(blp)
    api.spec.components.schema("BatchSubmission", schema=BatchSubmissionSchema)
