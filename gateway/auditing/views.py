"""The auditor API: events with filters and a cursor, exports, the integrity
check, checkpoints and anomalies. Role ``auditor`` only; every read is itself
an audit event (``audit.read``, ``audit.export``, ``audit.verify``,
``audit.anomalies``, ``audit.proof``) naming the filters used. Each first
integrates the pending events (gateway/auditing/sequencer.py), so an auditor
sees everything committed before the call.

The JSON bodies are built as the chain holds its fields and returned as they are
(flask-smorest passes a ``Response`` through); the response schemas document
them in the OpenAPI document, and a test loads real bodies with them.
"""

from __future__ import annotations

from datetime import timedelta, timezone
from typing import Any

from flask import Flask, Response, current_app, jsonify, stream_with_context
from marshmallow import RAISE, Schema, ValidationError, fields, validate, validates_schema

from audit.checkpoint_file import CheckpointFileError, load_checkpoint_file
from audit.checkpoint_store import load_checkpoints, verify_log_with_checkpoints
from audit.checkpoints import checkpoint_record, in_chain_order
from audit import proofs
from audit.chain import format_time
from audit.merkle import ProofError
from gateway.api import ApiBlueprint, roles_required
from gateway.auditing.log import get_audit
from gateway.auditing import services
from gateway.auditing.sequencer import integrate_pending
from gateway.auth.access import current_principal
from gateway.auth.keys import read_checkpoint_public_keys
from gateway.db import get_db
from gateway.errors import ConfigError, InvalidInput, NotFound
from gateway.timeutil import utc_now
from schemas.canonical import (
    AnomalyListSchema, AuditCheckpointListSchema, AuditConsistencyProofSchema, AuditEventPageSchema,
    AuditInclusionProofSchema, AuditVerifySchema, ErrorSchema,
)

blp = ApiBlueprint("audit", __name__, url_prefix="/api/v1/audit", description="Auditors: the audit log")


class EventFilterSchema(Schema):
    class Meta:
        unknown = "raise"

    actor = fields.Str(validate=validate.Length(1, 128), metadata={"description": "token subject of the actor"})
    court = fields.Str(validate=validate.Length(1, 32))
    case = fields.Str(validate=validate.Length(1, 64), metadata={"description": "case number"})
    subject = fields.Str(validate=validate.Length(18, 18),
                         metadata={"description": "full identity number; hashed with the audit key, never stored"})
    subject_hash = fields.Str(validate=validate.Regexp(r"^[0-9a-f]{64}$", error="must be 64 lowercase hex digits"),
                              metadata={"description": "the subject's keyed hash (as in events' subject_hash): "
                                                       "what the console puts in its links instead of the number"})
    agency = fields.Str(validate=validate.Length(1, 64))
    action = fields.Str(validate=validate.Length(1, 64), metadata={"description": "exact, or a prefix ending in *"})
    outcome = fields.Str(validate=validate.Length(1, 32))
    request_id = fields.Str(validate=validate.Length(1, 36))
    from_ = fields.AwareDateTime(data_key="from", attribute="from", default_timezone=timezone.utc)
    to = fields.AwareDateTime(default_timezone=timezone.utc)

    @validates_schema
    def _range(self, data: dict[str, Any], **_: Any) -> None:
        if data.get("from") and data.get("to") and data["from"] >= data["to"]:
            raise ValidationError("must be after from", field_name="to")


class EventPageArgsSchema(EventFilterSchema):
    cursor = fields.Str(validate=validate.Length(1, 64), metadata={"description": "next_cursor of the previous page"})
    limit = fields.Int(load_default=100, validate=validate.Range(1, 1000))


class ExportArgsSchema(EventFilterSchema):
    format = fields.Str(load_default="jsonl", validate=validate.OneOf(("csv", "jsonl")))


class AnomalyArgsSchema(Schema):
    class Meta:
        unknown = "raise"

    from_ = fields.AwareDateTime(data_key="from", attribute="from", default_timezone=timezone.utc)
    to = fields.AwareDateTime(default_timezone=timezone.utc)

    @validates_schema
    def _range(self, data: dict[str, Any], **_: Any) -> None:
        if data.get("from") and data.get("to") and data["from"] >= data["to"]:
            raise ValidationError("must be after from", field_name="to")


def _utc(filters: dict[str, Any]) -> dict[str, Any]:
    return {k: (v.astimezone(timezone.utc) if k in ("from", "to") and v else v) for k, v in filters.items()}


def _record_read(session: Any, action: str, filters: dict[str, Any], actor: Any = None, **details: Any) -> None:
    get_audit().record(session, action=action, outcome="ok", actor=actor if actor is not None else current_principal(),
                       case_number=filters.get("case"), request_id=filters.get("request_id"),
                       subject_id_number=services.normalise_subject(filters["subject"]) if filters.get("subject") else None,
                       details={"filters": services.filters_for_audit(filters), **details})


@blp.route("/events", methods=["GET"])
@roles_required("auditor")
@blp.arguments(EventPageArgsSchema(), location="query", unknown=RAISE)
@blp.response(200, AuditEventPageSchema, description="a page of events, oldest first")
@blp.alt_response(400, schema=ErrorSchema, description="a filter breaks its rule")
def list_events(args: dict[str, Any]) -> Any:
    """Events matching the filters, oldest first; ``next_cursor`` fetches the next page."""
    args = _utc(args)
    cursor, limit = args.pop("cursor", None), args.pop("limit")
    with get_db().transaction() as session:
        integrate_pending(session)  # what was just written is listed, not left to the sequencer's next pass
        page = services.find_events(session, args, get_audit(), cursor=cursor, limit=limit)
        _record_read(session, "audit.read", args, returned=len(page.events))
    return jsonify(events=page.events, next_cursor=page.next_cursor)


@blp.route("/events/export", methods=["GET"])
@roles_required("auditor")
@blp.arguments(ExportArgsSchema(), location="query", unknown=RAISE)
@blp.doc(responses={"200": {"description": "every matching event, a download (`format`: csv or jsonl)", "content": {
    media_type: {"schema": {"type": "string"}} for media_type in ("text/csv", "application/x-ndjson")}}})
@blp.alt_response(400, schema=ErrorSchema, description="a filter breaks its rule")
def export_events(args: dict[str, Any]) -> Any:
    """Every matching event as CSV or JSON lines, with the chain fields, for offline verification."""
    args = _utc(args)
    fmt = args.pop("format")
    return export_response(args, fmt, current_principal())


def export_response(filters: dict[str, Any], fmt: str, actor: Any, **details: Any) -> Response:
    """Every event matching ``filters`` as a CSV or JSON lines download, audited as
    ``audit.export``: the API's export and the console's buttons."""
    db, audit = get_db(), get_audit()
    max_events = current_app.config["SETTINGS"].audit.export_max_events
    with db.transaction() as session:  # a bad subject is refused (400) here, before the stream starts
        _record_read(session, "audit.export", filters, actor, format=fmt, **details)
    with db.transaction() as session:  # the export holds everything written before it, itself included
        integrate_pending(session)

    def body() -> Any:
        with db.reading() as session:
            yield from services.render_export(services.iter_events(session, filters, audit, max_events=max_events), fmt)

    mimetype = "text/csv" if fmt == "csv" else "application/x-ndjson"
    name = f"audit-export-{utc_now().strftime('%Y%m%dT%H%M%SZ')}.{fmt}"
    return Response(stream_with_context(body()), mimetype=mimetype,
                    headers={"Content-Disposition": f'attachment; filename="{name}"'})


@blp.route("/verify", methods=["GET"])
@roles_required("auditor")
@blp.response(200, AuditVerifySchema, description="the verdict: `ok` false names the first event that does not hold")
def verify() -> Any:
    """Recompute the live chain and hold it against every signed checkpoint."""
    return jsonify(check_integrity(current_principal()))


def check_integrity(actor: Any) -> dict[str, Any]:
    """The integrity check's verdict (``AuditVerifySchema``), audited as ``audit.verify``:
    the API's and the console's "verify chain"."""
    settings = current_app.config["SETTINGS"]
    try:
        public_key = read_checkpoint_public_keys(settings)
    except ConfigError:
        public_key = None  # verification then fails if any checkpoint exists (it cannot be checked)
    db = get_db()
    outside = outside_checkpoints(settings)
    with db.transaction() as session:
        integrate_pending(session)
    with db.reading() as session:
        report = verify_log_with_checkpoints(session, public_key, event_key=get_audit().event_key, outside=outside,
                                             unsealed_after_seconds=settings.audit.unsealed_after_seconds,
                                             now=utc_now())
    body = report.as_dict()
    with db.transaction() as session:
        get_audit().record(session, action="audit.verify", outcome="ok", actor=actor,
                           details={"result": ("ok" if report.sealed else "unsealed") if report.ok else "broken",
                                    "first_bad_seq": body["first_bad_seq"], "kind": body["kind"],
                                    "events_checked": body["events_checked"],
                                    "unsealed_events": body["unsealed_events"]})
    return body


@blp.route("/checkpoints", methods=["GET"])
@roles_required("auditor")
@blp.response(200, AuditCheckpointListSchema)
def checkpoints() -> Any:
    """Every signed checkpoint in chain order, with ``number``, ``prev_checkpoint_hash``
    and its own ``checkpoint_hash``: keep a copy, and verify an export offline (or
    the database: ``gateway audit verify --checkpoints``) with the public key."""
    with get_db().transaction() as session:
        rows = in_chain_order(load_checkpoints(session))
        get_audit().record(session, action="audit.checkpoints", outcome="ok", actor=current_principal(),
                           details={"returned": len(rows)})
    return jsonify(checkpoints=[checkpoint_record(r) for r in rows])


def outside_checkpoints(settings: Any) -> list[dict[str, Any]]:
    """The checkpoint file's copy, if there is one yet (none before the first checkpoint)."""
    path = settings.checkpoint_file_path
    try:
        return load_checkpoint_file(path)
    except FileNotFoundError:
        return []
    except (OSError, CheckpointFileError) as exc:
        raise ConfigError(f"{path}: the outside copy of the checkpoints cannot be read: {exc}") from None


@blp.route("/anomalies", methods=["GET"])
@roles_required("auditor")
@blp.arguments(AnomalyArgsSchema(), location="query", unknown=RAISE)
@blp.response(200, AnomalyListSchema)
@blp.alt_response(400, schema=ErrorSchema, description="a filter breaks its rule")
def anomalies(args: dict[str, Any]) -> Any:
    """Flagged access patterns between ``from`` and ``to`` (default: the last ``lookback_days``)."""
    section = current_app.config["SETTINGS"].anomalies
    until = (args.get("to") or utc_now()).astimezone(timezone.utc)
    since = (args.get("from") or until - timedelta(days=section.lookback_days)).astimezone(timezone.utc)
    with get_db().transaction() as session:
        integrate_pending(session)
        found = services.detect_anomalies(session, section, since=since, until=until)
        get_audit().record(session, action="audit.anomalies", outcome="ok", actor=current_principal(),
                           details={"filters": {"from": format_time(since), "to": format_time(until)},
                                    "returned": len(found)})
    return jsonify(anomalies=found, since=format_time(since), until=format_time(until))


class InclusionArgsSchema(Schema):
    event = fields.Int(required=True, validate=validate.Range(min=1), metadata={"description": "the event's seq"})
    tree_size = fields.Int(validate=validate.Range(min=1), metadata={
        "description": "the tree to prove it in (default: the newest checkpoint's, if it holds the event)"})


class ConsistencyArgsSchema(Schema):
    from_size = fields.Int(required=True, data_key="from", validate=validate.Range(min=1))
    to_size = fields.Int(required=True, data_key="to", validate=validate.Range(min=1))


@blp.route("/proofs/inclusion", methods=["GET"])
@roles_required("auditor")
@blp.arguments(InclusionArgsSchema(), location="query", unknown=RAISE)
@blp.response(200, AuditInclusionProofSchema, description="the proof, with the checkpoint that signs its tree")
@blp.alt_response(400, schema=ErrorSchema, description="the event or tree size is not in the log")
@blp.alt_response(404, schema=ErrorSchema, description="the event is archived")
def inclusion_proof(args: dict[str, Any]) -> Any:
    """RFC 9162 inclusion proof that one event is in the log's Merkle tree."""
    with get_db().transaction() as session:
        integrate_pending(session)
        try:
            proof = proofs.inclusion_proof(session, args["event"], args.get("tree_size"))
        except ProofError as exc:
            field = "tree_size" if str(exc).startswith("tree_size") else "event"
            raise InvalidInput(str(exc), fields={field: [str(exc)]}) from None
        except LookupError as exc:
            raise NotFound(str(exc)) from None
        get_audit().record(session, action="audit.proof", outcome="ok", actor=current_principal(),
                           details={"proof": "inclusion", "event": args["event"], "tree_size": proof["tree_size"]})
    return jsonify(proof)


@blp.route("/proofs/consistency", methods=["GET"])
@roles_required("auditor")
@blp.arguments(ConsistencyArgsSchema(), location="query", unknown=RAISE)
@blp.response(200, AuditConsistencyProofSchema, description="the proof, with the checkpoints that sign both trees")
@blp.alt_response(400, schema=ErrorSchema, description="the sizes are not 1 <= from <= to <= the log's size")
def consistency_proof(args: dict[str, Any]) -> Any:
    """RFC 9162 consistency proof that the tree of ``to`` events extends the one of ``from``."""
    with get_db().transaction() as session:
        integrate_pending(session)
        try:
            proof = proofs.consistency_proof(session, args["from_size"], args["to_size"])
        except ProofError as exc:
            field = "from" if str(exc).startswith("from") else "to"
            raise InvalidInput(str(exc), fields={field: [str(exc)]}) from None
        get_audit().record(session, action="audit.proof", outcome="ok", actor=current_principal(),
                           details={"proof": "consistency", "from": args["from_size"], "to": args["to_size"]})
    return jsonify(proof)


def init_app(app: Flask, api: Any) -> None:
    api.register_blueprint(blp)
