"""Bankruptcy API: a court reports it accepted a bankruptcy application against a debtor."""

from __future__ import annotations

from typing import Any

from flask import Flask, current_app
from marshmallow import Schema, fields, validate

from gateway.api import ApiBlueprint, roles_required
from gateway.auditing.log import get_audit
from gateway.auth.access import current_principal
from gateway.bankruptcy import screening, services
from gateway.db import get_db
from gateway.timeutil import court_date
from schemas.canonical import ErrorSchema
from schemas.fields import Money, UtcDateTime

blp = ApiBlueprint("bankruptcy", __name__, url_prefix="/api/v1", description="Enforcement hands over to bankruptcy")


class BankruptcySchema(Schema):
    court = fields.Str(required=True, validate=validate.Regexp(r"^[0-9A-Za-z]{1,32}$"),
                       metadata={"description": "the court that accepted the bankruptcy application"})
    date = fields.Date(required=True, metadata={"description": "the court date of the acceptance ruling"})
    administrator = fields.Str(required=True, validate=validate.Length(min=1, max=200),
                               metadata={"description": "the administrator (管理人) the court appointed"})
    bankruptcy_case_number = fields.Str(load_default=None, validate=validate.Length(min=1, max=64))


class FlaggedControlSchema(Schema):
    id = fields.Str()
    case_number = fields.Str()
    court = fields.Str()
    agency = fields.Str()
    identifier = fields.Str()
    action = fields.Str()
    state = fields.Str()
    amount = Money(allow_none=True)
    release = fields.Str(allow_none=True, metadata={"description": "the release prepared, or why none was"})
    release_request_id = fields.Str()


class BankruptcyOutSchema(Schema):
    subject_id = fields.Str()
    court = fields.Str()
    accepted_on = fields.Str()
    administrator = fields.Str()
    bankruptcy_case_number = fields.Str(allow_none=True)
    rule = fields.Str()
    recorded_by = fields.Str()
    recorded_at = UtcDateTime()
    cases = fields.List(fields.Dict(), metadata={"description": "cases naming the subject as debtor, now flagged"})
    controls = fields.List(fields.Nested(FlaggedControlSchema))
    release_requests = fields.List(fields.Dict(), metadata={
        "description": "releases awaiting each case court's approver"})


@blp.route("/subjects/<subject_id>/bankruptcy", methods=["POST"])
@roles_required("court_officer", "admin")
@blp.arguments(BankruptcySchema())
@blp.response(201, BankruptcyOutSchema)
@blp.alt_response(409, schema=ErrorSchema, description="already recorded")
@blp.alt_response(422, schema=ErrorSchema, description="the subject is not an enterprise")
def record_bankruptcy(payload: dict[str, Any], subject_id: str) -> Any:
    """Record that a court accepted a bankruptcy application against the debtor (Enterprise
    Bankruptcy Law art. 19): every court's new control on it is refused from now on, each
    court's cases naming it are flagged, and a release of each control in force is prepared
    for the approvers of that case's court."""
    principal = current_principal()
    now = current_app.extensions["clock"]()
    with get_db().transaction() as session:
        recorded = services.record_bankruptcy(session, subject_id, payload, principal,
                                              registry=current_app.extensions["registry"], audit=get_audit(), now=now)
        body = {**services.flag_view(recorded.bankruptcy), "recorded_by": recorded.bankruptcy.recorded_by,
                "recorded_at": recorded.bankruptcy.recorded_at, "cases": recorded.cases, "controls": recorded.controls,
                "release_requests": [{"id": r} for r in recorded.release_requests]}
    current_app.extensions["worker"].wake()
    return body, 201


@blp.route("/subjects/<subject_id>/bankruptcy", methods=["GET"])
@roles_required("court_officer", "approver", "admin")
@blp.response(200, BankruptcyOutSchema)
@blp.alt_response(404, schema=ErrorSchema, description="no bankruptcy recorded for the subject")
def show_bankruptcy(subject_id: str) -> Any:
    """The bankruptcy, the cases flagged, controls still live and the releases prepared
    (an admin sees every court's; others their own court's)."""
    principal = current_principal()
    today = court_date(current_app.extensions["clock"]())
    with get_db().transaction() as session:
        return services.standing(session, services.bankruptcy_of(session, subject_id), principal, today)


class ScreeningQuerySchema(Schema):
    min_cases = fields.Int(load_default=None, validate=validate.Range(min=1, max=1000), metadata={
        "description": "terminated cases at least (default: settings bankruptcy.screening_terminated_cases)"})


class ScreenedSchema(Schema):
    subject_id = fields.Str()
    name = fields.Str()
    id_number_masked = fields.Str()
    terminated_cases = fields.Int()
    courts = fields.List(fields.Str())
    cases = fields.List(fields.Dict())


class ScreeningSchema(Schema):
    min_cases = fields.Int()
    items = fields.List(fields.Nested(ScreenedSchema))


@blp.route("/bankruptcy/screening", methods=["GET"])
@roles_required("admin")
@blp.arguments(ScreeningQuerySchema(), location="query")
@blp.response(200, ScreeningSchema)
def bankruptcy_screening(query: dict[str, Any]) -> Any:
    """Enterprise debtors in at least N terminated cases (终本) of any court, for referral
    to bankruptcy review; those whose bankruptcy is recorded are left out."""
    min_cases = query.get("min_cases") or current_app.config["SETTINGS"].bankruptcy.screening_terminated_cases
    with get_db().transaction() as session:
        items = screening.screen(session, min_cases)
        get_audit().record(session, action="bankruptcy.screening", outcome="ok", actor=current_principal(),
                           details={"min_cases": min_cases, "listed": len(items)})
    return {"min_cases": min_cases, "items": items}


def init_app(app: Flask, api: Any) -> None:
    api.register_blueprint(blp)
