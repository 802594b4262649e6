"""Several creditors API: consent to a later case's deduct, distribution plans."""

from __future__ import annotations

from typing import Any

from flask import Flask, current_app
from marshmallow import Schema, fields, validate

from gateway.api import ApiBlueprint, roles_required, set_audit_context
from gateway.auditing.log import get_audit
from gateway.auth.access import current_principal
from gateway.cases.services import find_case
from gateway.creditors import services
from gateway.db import get_db
from schemas.canonical import ErrorSchema
from schemas.fields import Money, UtcDateTime

blp = ApiBlueprint("creditors", __name__, url_prefix="/api/v1", description="Several creditors of one debtor")


class ConsentSchema(Schema):
    case_number = fields.Str(required=True, validate=validate.Length(min=1, max=64),
                             metadata={"description": "the later case allowed to deduct from the account"})
    reason = fields.Str(load_default=None, validate=validate.Length(max=500))


class ConsentOutSchema(Schema):
    id = fields.Str()
    control_id = fields.Str()
    case_number = fields.Str()
    consented_by = fields.Str()
    consented_at = UtcDateTime()


class ClaimSchema(Schema):
    case_number = fields.Str(required=True, validate=validate.Length(min=1, max=64))
    priority = fields.Str(required=True, metadata={"description": "a class of settings creditors.priority_classes"})


class PlanInSchema(Schema):
    case_number = fields.Str(required=True, metadata={"description": "the caller's court's case the money came in for"})
    subject_id = fields.Str(required=True, metadata={"description": "the debtor (gateway subject id)"})
    amount = Money(required=True, metadata={"description": "money received, to distribute"})
    claims = fields.List(fields.Nested(ClaimSchema), required=True, validate=validate.Length(min=1, max=200))


class ShareSchema(Schema):
    case_number = fields.Str()
    court = fields.Str()
    priority = fields.Str()
    claim = Money(metadata={"description": "what the case was still owed"})
    share = Money()


class PlanSchema(Schema):
    id = fields.Str()
    court = fields.Str()
    received_in = fields.Str()
    amount = Money()
    surplus = Money(metadata={"description": "above every claim: returned to the debtor"})
    priority_classes = fields.List(fields.Str())
    created_by = fields.Str()
    created_at = UtcDateTime()
    shares = fields.List(fields.Nested(ShareSchema))
    this_case = fields.Nested(ShareSchema, allow_none=True)


class CasePlansSchema(Schema):
    case_number = fields.Str()
    plans = fields.List(fields.Nested(PlanSchema))


@blp.route("/controls/<control_id>/consents", methods=["POST"])
@roles_required("court_officer", "approver", "admin")
@blp.arguments(ConsentSchema())
@blp.response(201, ConsentOutSchema)
@blp.alt_response(404, schema=ErrorSchema, description="no such freeze for the caller's court")
@blp.alt_response(409, schema=ErrorSchema, description="consent already given")
def give_consent(payload: dict[str, Any], control_id: str) -> Any:
    """The case holding this freeze lets a later case's deduct on the same account go ahead of it."""
    with get_db().transaction() as session:
        row = services.consent(session, control_id, payload, current_principal(), audit=get_audit(),
                               now=current_app.extensions["clock"]())
        return {"id": row.id, "control_id": row.control_id, "case_number": payload["case_number"],
                "consented_by": row.consented_by, "consented_at": row.consented_at}, 201


@blp.route("/distributions", methods=["POST"])
@roles_required("court_officer")
@blp.arguments(PlanInSchema())
@blp.response(201, PlanSchema)
@blp.alt_response(400, schema=ErrorSchema, description="a claim names no case with this debtor, or an unknown class")
def make_plan(payload: dict[str, Any]) -> Any:
    """A distribution plan (参与分配) for money received in one of the caller's cases, over
    the cases of any court against the same debtor: classes in the configured order, each
    paid in full before the next; within a class, proportional to what each is still owed,
    in whole cents (docs/case-life/several-creditors.md gives the rounding rule)."""
    set_audit_context(case_number=payload["case_number"])
    with get_db().transaction() as session:
        plan = services.make_plan(session, payload, current_principal(),
                                  classes=current_app.config["SETTINGS"].creditors.priority_classes,
                                  audit=get_audit(), now=current_app.extensions["clock"]())
        return services.plan_view(session, plan, plan.case_id), 201


@blp.route("/cases/<case_number>/distributions", methods=["GET"])
@roles_required("court_officer", "approver", "admin")
@blp.response(200, CasePlansSchema)
@blp.alt_response(404, schema=ErrorSchema, description="no such case for the caller's court")
def case_plans(case_number: str) -> Any:
    """Every distribution plan this case has a share in, with its share (``this_case``)."""
    with get_db().transaction() as session:
        case = find_case(session, case_number, current_principal())
        return {"case_number": case.case_number, "plans": services.plans_of_case(session, case)}


def init_app(app: Flask, api: Any) -> None:
    api.register_blueprint(blp)
