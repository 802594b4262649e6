"""Terminated cases (终本) API: the check, terminating, the termination and its
re-inquiries, resuming."""

from __future__ import annotations

from typing import Any

from flask import Flask, current_app
from marshmallow import Schema, fields, validate

from gateway.api import ApiBlueprint, roles_required, set_audit_context
from gateway.auditing.log import get_audit
from gateway.auth.access import current_principal
from gateway.cases.services import find_case
from gateway.db import get_db
from gateway.errors import NotFound
from gateway.termination import services
from schemas.canonical import ErrorSchema

blp = ApiBlueprint("termination", __name__, url_prefix="/api/v1",
                   description="Terminated cases (终本): the check, termination, re-inquiries, resumption")
READERS = ("court_officer", "approver", "admin")
DECIDERS = ("court_officer", "approver")


class ConditionSchema(Schema):
    name = fields.Str(metadata={"description": "network_inquiries or months_since_filing"})
    rule = fields.Str(metadata={"description": "the article of the SPC rules it proves"})
    met = fields.Bool()
    evidence = fields.Raw(metadata={"description": "request and delivery ids, answer times; filing and earliest dates"})
    gaps = fields.List(fields.Str(), metadata={"description": "what is missing, one sentence each"})


class CheckSchema(Schema):
    case_number = fields.Str()
    as_of = fields.Str()
    ready = fields.Bool(metadata={"description": "every condition the gateway can prove is met"})
    required_categories = fields.List(fields.Str())
    conditions = fields.List(fields.Nested(ConditionSchema))
    not_provable_by_gateway = fields.List(fields.Dict(), metadata={
        "description": "conditions of art. 1 and 3 only the court's file proves"})


class TerminateSchema(Schema):
    reason = fields.Str(required=True, validate=validate.Length(min=1, max=500))
    ruling_number = fields.Str(load_default=None, validate=validate.Length(min=1, max=64),
                               metadata={"description": "the termination ruling (终本裁定书)"})


class ResumeSchema(Schema):
    reason = fields.Str(required=True, validate=validate.Length(min=1, max=500))


class RequeryViewSchema(Schema):
    round = fields.Int()
    due_at = fields.Str()
    made_at = fields.Str()
    state = fields.Str(metadata={"description": "asked, finished, refused"})
    request_ids = fields.List(fields.Str())
    finished_at = fields.Str(allow_none=True)
    new_assets = fields.List(fields.Dict(), allow_none=True)
    creditor_notice = fields.Dict(allow_none=True)


class TerminationViewSchema(Schema):
    id = fields.Str()
    case_number = fields.Str()
    state = fields.Str(metadata={"description": "terminated or resumed"})
    terminated_by = fields.Str()
    terminated_at = fields.Str()
    reason = fields.Str()
    ruling_number = fields.Str(allow_none=True)
    categories = fields.List(fields.Str())
    known_assets = fields.Int(metadata={"description": "assets known at termination"})
    next_requery_at = fields.Str(allow_none=True)
    requery_until = fields.Str()
    resumable_since = fields.Str(allow_none=True)
    resumed_by = fields.Str(allow_none=True)
    resumed_at = fields.Str(allow_none=True)
    resume_reason = fields.Str(allow_none=True)
    requeries = fields.List(fields.Nested(RequeryViewSchema))


def _context() -> tuple[Any, Any]:
    return current_app.config["SETTINGS"].termination, current_app.extensions["clock"]()


@blp.route("/cases/<case_number>/termination-check", methods=["GET"])
@roles_required(*READERS)
@blp.response(200, CheckSchema)
@blp.alt_response(404, schema=ErrorSchema, description="no such case for the caller's court")
def termination_check(case_number: str) -> Any:
    """Whether the case may be terminated: each condition the gateway can prove, with evidence."""
    principal = current_principal()
    set_audit_context(case_number=case_number)
    settings, now = _context()
    with get_db().transaction() as session:
        case = find_case(session, case_number, principal)
        body = services.check(session, case, settings=settings, registry=current_app.extensions["registry"], now=now)
        get_audit().record(session, action="termination.checked", outcome="ready" if body["ready"] else "not_ready",
                           actor=principal, case_number=case.case_number,
                           details={"gaps": sum(len(c["gaps"]) for c in body["conditions"])})
    return body


@blp.route("/cases/<case_number>/terminate", methods=["POST"])
@roles_required(*DECIDERS)
@blp.arguments(TerminateSchema())
@blp.response(201, TerminationViewSchema)
@blp.alt_response(404, schema=ErrorSchema, description="no such case for the caller's court")
@blp.alt_response(409, schema=ErrorSchema, description="the case is terminated already")
@blp.alt_response(422, schema=ErrorSchema, description="a condition is not met: fields name each and what it lacks")
def terminate(payload: dict[str, Any], case_number: str) -> Any:
    """Terminate the present procedure (终结本次执行程序): refused until the conditions hold;
    then the debtors are queried again on schedule."""
    principal = current_principal()
    set_audit_context(case_number=case_number)
    settings, now = _context()
    with get_db().transaction() as session:
        case = find_case(session, case_number, principal)
        row = services.terminate(session, case, principal, reason=payload["reason"],
                                 ruling_number=payload["ruling_number"], settings=settings,
                                 registry=current_app.extensions["registry"], audit=get_audit(), now=now)
        return services.termination_view(session, case, row), 201


@blp.route("/cases/<case_number>/termination", methods=["GET"])
@roles_required(*READERS)
@blp.response(200, TerminationViewSchema)
@blp.alt_response(404, schema=ErrorSchema, description="no such case, or never terminated")
def termination(case_number: str) -> Any:
    """The case's latest termination, its re-inquiries and the creditor notices recorded."""
    principal = current_principal()
    set_audit_context(case_number=case_number)
    with get_db().transaction() as session:
        case = find_case(session, case_number, principal)
        row = services.latest(session, case.id)
        if row is None:
            raise NotFound(f"case {case.case_number} was never terminated")
        body = services.termination_view(session, case, row)
        # What was found for a debtor is read like a report: who looked is on record.
        get_audit().record(session, action="termination.read", outcome="ok", actor=principal,
                           case_number=case.case_number, details={"termination": row.id,
                                                                  "requeries": len(body["requeries"])})
        return body


@blp.route("/cases/<case_number>/resume", methods=["POST"])
@roles_required(*DECIDERS)
@blp.arguments(ResumeSchema())
@blp.response(200, TerminationViewSchema)
@blp.alt_response(404, schema=ErrorSchema, description="no such case for the caller's court")
@blp.alt_response(409, schema=ErrorSchema, description="the case is not terminated")
def resume(payload: dict[str, Any], case_number: str) -> Any:
    """Resume enforcement (恢复执行, art. 9): the scheduled re-inquiries stop."""
    principal = current_principal()
    set_audit_context(case_number=case_number)
    _, now = _context()
    with get_db().transaction() as session:
        case = find_case(session, case_number, principal)
        row = services.resume(session, case, principal, reason=payload["reason"], audit=get_audit(), now=now)
        return services.termination_view(session, case, row)


def init_app(app: Flask, api: Any) -> None:
    api.register_blueprint(blp)
