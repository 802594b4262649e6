from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from flask import Flask, Response, current_app, request
from marshmallow import RAISE, Schema, fields, validate
from sqlalchemy import Connection
from sqlalchemy.exc import IntegrityError

from gateway.api import ApiBlueprint, base64_length, body_limit, roles_required, set_audit_context
from gateway.auditing.log import get_audit
from gateway.auth.access import current_principal
from gateway.auth.tokens import Principal
from gateway.db import get_db
from gateway.errors import RuleViolation
from gateway.requests import queries, services
from gateway.requests.group_commit import GroupCommit
from gateway.settings import LimitsSection
from gateway.timeutil import utc_now
from schemas.canonical import (
    ErrorSchema, RequestDetailSchema, RequestListArgsSchema, RequestPageSchema, RequestStateSchema, RequestSubmissionSchema,
)

blp = ApiBlueprint("requests", __name__, url_prefix="/api/v1", description="One-click inquiries and controls")


class IdempotencyHeaderSchema(Schema):
    class Meta:
        unknown = "exclude"

    idempotency_key = fields.Str(
        data_key="Idempotency-Key", required=True,
        validate=validate.Regexp(r"^[A-Za-z0-9._:-]{8,128}$", error="must be 8-128 of A-Z a-z 0-9 . _ : -"),
        metadata={"description": "same key and body give the same reply; same key, other body: 409"},
    )


@blp.route("/requests", methods=["POST"])
@roles_required("court_officer")
# Room for one legal document of the largest size sent inline; more go by POST /api/v1/documents.
@body_limit(lambda settings: settings.gateway.max_content_length + base64_length(settings.documents.max_bytes))
@blp.arguments(IdempotencyHeaderSchema(), location="headers")
@blp.arguments(RequestSubmissionSchema())  # an instance: built once, not per call
@blp.response(202, RequestStateSchema, description="accepted: one delivery per agency, queued")
@blp.alt_response(400, schema=ErrorSchema, description="a field breaks its rule")
@blp.alt_response(403, schema=ErrorSchema, description="the subject is not a debtor of the caller's case")
@blp.alt_response(409, schema=ErrorSchema, description="the Idempotency-Key was used with another body")
@blp.alt_response(413, schema=ErrorSchema, description="a document inline is larger than [documents] max_bytes")
@blp.alt_response(422, schema=ErrorSchema, description="a rule forbids it (no legal basis, no legal document, "
                  "no credentials on file, an unknown document, no agency)")
def submit_request(headers: dict[str, Any], payload: dict[str, Any]) -> Any:
    """Submit a one-click request about one subject in one case."""
    key = headers["idempotency_key"]
    principal = current_principal()
    digest = services.payload_digest(request.get_json())
    set_audit_context(case_number=payload["case_number"], subject_id_number=payload["subject"]["id_number"])
    db, audit = get_db(), get_audit()
    settings = current_app.config["SETTINGS"]
    options = {
        "principal": principal, "idempotency_key": key, "digest": digest,
        "registry": current_app.extensions["registry"], "now": current_app.extensions["clock"](),
        "reuse_window": timedelta(seconds=settings.reuse.freshness_seconds),
        "rules": current_app.extensions["control_rules"], "max_document_bytes": settings.documents.max_bytes,
    }
    try:
        if payload["action"] in services.PLANNED_ON_A_SNAPSHOT:  # outside the write lock (services.py says why)
            with db.reading_connection() as connection:
                prepared = services.prepare_request(connection, payload, **options)
            current_app.extensions["intake_group_commit"].write(
                _Planned(prepared, payload, principal, settings.limits, key))
        else:
            with db.connection_transaction() as connection:
                prepared = services.prepare_request(connection, payload, **options, limits=settings.limits)
                services.write_request(connection, prepared, principal=principal, audit=audit)
    except IntegrityError:
        # This officer used this Idempotency-Key before: the same body gets the first
        # reply, another body a 409. Replays are rare, so the hot path does not look first.
        with db.transaction() as session:
            replay = services.find_replay(session, principal, key, digest)
            if replay is None:
                raise
            audit.record(
                session, action=f"request.{payload['action']}", outcome="replayed", actor=principal,
                case_number=payload["case_number"], subject_id_number=payload["subject"]["id_number"],
                request_id=replay["id"], details={"idempotency_key": key},
            )
        return _json(replay, 202)
    current_app.extensions["worker"].wake()  # committed: this process's worker may start now
    return _json(prepared.reply, 202)


def _json(body: dict[str, Any], status: int) -> Response:
    """An already-rendered body (flask-smorest would dump it through the schema again)."""
    return current_app.response_class(json.dumps(body, ensure_ascii=False), status=status, mimetype="application/json")


@blp.route("/requests", methods=["GET"])
@roles_required("court_officer", "approver", "admin")
@blp.arguments(RequestListArgsSchema(), location="query", unknown=RAISE)
@blp.response(200, RequestPageSchema)
@blp.alt_response(400, schema=ErrorSchema, description="a filter breaks its rule, or a cursor not returned by this API")
def list_requests(args: dict[str, Any]) -> Any:
    """The caller's court's requests, newest first, in full; ``awaiting_approval=true`` is a
    judge's queue. ``next_cursor`` fetches the next page."""
    principal = current_principal()
    cursor, limit = args.pop("cursor", None), args.pop("limit")
    with get_db().transaction() as session:
        page = queries.find_requests(session, principal, args, cursor=cursor, limit=limit)
        get_audit().record(session, action="request.list", outcome="ok", actor=principal,
                           case_number=args.get("case_number"),
                           details={"filters": {k: v for k, v in args.items() if k != "case_number"},
                                    "returned": len(page.requests)})
    return {"requests": page.requests, "next_cursor": page.next_cursor}


@blp.route("/requests/<request_id>", methods=["GET"])
@roles_required("court_officer", "approver", "admin")
@blp.response(200, RequestDetailSchema)
@blp.alt_response(404, schema=ErrorSchema)
def get_request(request_id: str) -> Any:
    """A request in full: what it asks (debtor, amount, targets with their last reported
    balances, legal basis, documents), proposer and decision, and each delivery with results."""
    principal = current_principal()
    set_audit_context(request_id=request_id)
    with get_db().transaction() as session:
        row = services.get_request(session, request_id, principal)
        body = queries.detail_view(session, row)
        get_audit().record(
            session, action="request.read", outcome="ok", actor=principal, case_number=body["case_number"],
            subject_id_number=row.subject.id_number, request_id=row.id,
        )
    return body


class ApprovalSchema(Schema):
    decision = fields.Str(required=True, validate=validate.OneOf(("approve", "reject"), error="must be approve or reject"))
    reason = fields.Str(load_default=None, validate=validate.Length(min=1, max=500))


@blp.route("/requests/<request_id>/approval", methods=["POST"])
@roles_required("approver")
@blp.arguments(ApprovalSchema())
@blp.response(200, RequestDetailSchema, description="decided: approved controls leave now; rejected ones end")
@blp.alt_response(403, schema=ErrorSchema, description="the proposer may not approve their own control")
@blp.alt_response(404, schema=ErrorSchema, description="no such request for the approver's court")
@blp.alt_response(409, schema=ErrorSchema, description="the request is not awaiting approval")
@blp.alt_response(422, schema=ErrorSchema, description="a rejection needs a reason")
def decide_request(payload: dict[str, Any], request_id: str) -> Any:
    """Approve or reject a control, as an approver of the same court other than its proposer."""
    principal = current_principal()
    set_audit_context(request_id=request_id)
    approve = payload["decision"] == "approve"
    if not approve and not payload.get("reason"):
        raise RuleViolation("a rejection says why", fields={"reason": ["required when rejecting"]})
    with get_db().transaction() as session:
        row = services.decide(
            session, request_id, principal, approve=approve, reason=payload.get("reason"),
            registry=current_app.extensions["registry"], audit=get_audit(), now=utc_now(),
        )
        body = queries.detail_view(session, row)
    if approve:
        current_app.extensions["worker"].wake()
    return body


@dataclass(frozen=True)
class _Planned:
    """An inquiry prepared on a snapshot, waiting for its turn under the write lock."""

    prepared: services.PreparedRequest
    payload: dict[str, Any]
    principal: Principal
    limits: LimitsSection
    idempotency_key: str


def _confirm_and_write(connection: Connection, planned: _Planned) -> None:
    services.confirm_request(connection, planned.prepared, planned.payload, principal=planned.principal,
                             limits=planned.limits, idempotency_key=planned.idempotency_key)
    services.write_request(connection, planned.prepared, principal=planned.principal, audit=get_audit())


def intake_batch_size(dialect: str) -> int:
    """How many inquiries one intake transaction writes. SQLite: what has gathered, up to
    32 (its writers queue on one lock anyway, and a commit is a fsync). PostgreSQL: one.
    There each request takes its officer's, then its court's advisory lock
    (limits.lock_counts), held to the commit, and nothing may hold a court's lock while
    waiting for an officer's; a batch would, asking for its second officer's lock while
    holding the court's of the first, and deadlock with that officer's own intake. Its
    writers do not queue on one lock, so each request commits in its own transaction."""
    return 32 if dialect == "sqlite" else 1


def init_app(app: Flask, api: Any) -> None:
    api.register_blueprint(blp)
    db = app.extensions["db"]
    app.extensions["intake_group_commit"] = GroupCommit(db.connection_transaction, _confirm_and_write,
                                                        max_batch=intake_batch_size(db.dialect))
