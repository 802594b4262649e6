"""Controls API: a case's ledger and the follow-up lists."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from flask import Flask, current_app
from marshmallow import Schema, fields, validate

from gateway.api import ApiBlueprint, roles_required, set_audit_context
from gateway.audit_service import get_audit
from gateway.auth.access import current_principal
from gateway.cases.services import find_case
from gateway.controls import services
from gateway.controls.ledger import HOLDING_STATES
from gateway.db import get_db
from gateway.errors import Forbidden
from schemas.canonical import CaseControlsSchema, ErrorSchema
from schemas.vocabulary import CASH_CATEGORIES

blp = ApiBlueprint("controls", __name__, url_prefix="/api/v1", description="Control ledger and follow-up lists")
COURT_ROLES = ("court_officer", "approver", "admin")


@blp.route("/cases/<case_number>/controls", methods=["GET"])
@roles_required(*COURT_ROLES)
@blp.response(200, CaseControlsSchema)
@blp.alt_response(404, schema=ErrorSchema, description="no such case for the caller's court")
def case_controls(case_number: str) -> Any:
    """Controls in force and waiting for a case, with their expiry, and its deducts."""
    principal = current_principal()
    set_audit_context(case_number=case_number)
    today = current_app.extensions["clock"]().date()
    with get_db().transaction() as session:
        case = find_case(session, case_number, principal)
        entries = services.case_ledger(session, case.id, today)
        get_audit().record(session, action="controls.read", outcome="ok", actor=principal,
                           case_number=case.case_number, details={"controls": len(entries)})
    frozen = sum((e["amount"] or Decimal("0") for e in entries
                  if e["category"] in CASH_CATEGORIES and e["state"] in HOLDING_STATES), Decimal("0"))
    return {"case_number": case.case_number, "amount_owed": case.amount_owed, "cash_frozen": frozen, "controls": entries}


class DueQuerySchema(Schema):
    days = fields.Int(load_default=None, validate=validate.Range(min=0, max=3650),
                      metadata={"description": "warning days (default: settings controls.warning_days)"})
    case_number = fields.Str(load_default=None)
    court = fields.Str(load_default=None, metadata={"description": "admins only: another court"})


class FollowUpSchema(Schema):
    kind = fields.Str(metadata={"description": "lapsing, uncontrolled, partly_covered, deduct_unconfirmed, deduct_mismatch"})
    case_number = fields.Str()
    agency = fields.Str()
    identifier = fields.Str()
    category = fields.Str()
    detail = fields.Str()
    due = fields.Str(allow_none=True)
    control_id = fields.Str(allow_none=True)
    asset_id = fields.Str(allow_none=True)


class DueListSchema(Schema):
    court = fields.Str(allow_none=True)
    as_of = fields.Str()
    items = fields.List(fields.Nested(FollowUpSchema))


@blp.route("/controls/due", methods=["GET"])
@roles_required(*COURT_ROLES)
@blp.arguments(DueQuerySchema(), location="query")
@blp.response(200, DueListSchema)
@blp.alt_response(403, schema=ErrorSchema, description="another court's list")
def controls_due(query: dict[str, Any]) -> Any:
    """Follow-up list of the caller's court (or one case): controls about to lapse, cash
    found but not controlled, freezes partly covered, deducts not confirmed."""
    principal = current_principal()
    court = query.get("court") or principal.court
    if principal.role != "admin" and court != principal.court:
        raise Forbidden(f"court {principal.court} may read only its own follow-up list", code="other_court")
    with get_db().transaction() as session:
        case_id = find_case(session, query["case_number"], principal).id if query.get("case_number") else None
        body = services.due_list(session, current_app.extensions["control_rules"], current_app.extensions["clock"](),
                                 court_code=court, case_id=case_id, days=query.get("days"))
        get_audit().record(session, action="controls.due", outcome="ok", actor=principal,
                           case_number=query.get("case_number"), details={"items": len(body["items"])})
    return body


def init_app(app: Flask, api: Any) -> None:
    api.register_blueprint(blp)
