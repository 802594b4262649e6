"""Controls API: a case's ledger and the follow-up lists."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from flask import Flask, current_app
from marshmallow import Schema, fields, validate
from sqlalchemy import select

from gateway.api import ApiBlueprint, roles_required, set_audit_context
from gateway.auditing.log import get_audit
from gateway.auth.access import current_principal
from gateway.bankruptcy.services import case_flag
from gateway.cases.models import Case
from gateway.cases.services import find_case
from gateway.controls import repeat, services
from gateway.controls.ledger import HOLDING_STATES
from gateway.controls.models import Control, RepeatFreeze
from gateway.creditors.queue import order_views
from gateway.db import get_db
from gateway.errors import Conflict, Forbidden, NotFound
from gateway.requests.models import Request
from gateway.timeutil import court_date
from schemas.canonical import CaseControlsSchema, ErrorSchema, LedgerEntrySchema
from schemas.fields import Money
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
    today = court_date(current_app.extensions["clock"]())
    with get_db().transaction() as session:
        case = find_case(session, case_number, principal)
        entries = services.case_ledger(session, case.id, today)
        get_audit().record(session, action="controls.read", outcome="ok", actor=principal,
                           case_number=case.case_number, details={"controls": len(entries)})
        flag = case_flag(session, case)
        orders = order_views(session, entries, today)
    for entry in entries:
        entry["order"] = orders.get(entry["id"])
    frozen = sum((e["amount"] or Decimal("0") for e in entries
                  if e["category"] in CASH_CATEGORIES and e["state"] in HOLDING_STATES), Decimal("0"))
    return {"case_number": case.case_number, "amount_owed": case.amount_owed, "cash_frozen": frozen,
            "controls": entries, "bankruptcy": flag}


class RepeatViewSchema(Schema):
    state = fields.Str(metadata={"description": "active, covered, cancelled or ended"})
    amount = fields.Str()
    attempts = fields.Int()
    attempt_requests = fields.List(fields.Str())
    next_attempt_at = fields.Str()
    ends_at = fields.Str()
    last_outcome = fields.Str(allow_none=True)


class DueQuerySchema(Schema):
    days = fields.Int(load_default=None, validate=validate.Range(min=0, max=3650),
                      metadata={"description": "warning days (default: settings controls.warning_days)"})
    case_number = fields.Str(load_default=None)
    court = fields.Str(load_default=None, metadata={"description": "admins only: another court"})


class FollowUpSchema(Schema):
    kind = fields.Str(metadata={"description": "lapsing, uncontrolled, partly_covered, deduct_unconfirmed, deduct_mismatch, "
                                               "resume (a terminated case's re-inquiry found new property)"})
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
    found but not controlled, freezes partly covered, deducts not confirmed, terminated
    cases whose re-inquiry found new property (resume)."""
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


class ReceiptSchema(Schema):
    amount = Money(required=True, metadata={"description": "money that arrived in the court's account"})
    reference = fields.Str(load_default=None, validate=validate.Length(min=1, max=64))


@blp.route("/controls/<control_id>/receipt", methods=["POST"])
@roles_required("court_officer", "admin")
@blp.arguments(ReceiptSchema())
@blp.response(200, LedgerEntrySchema)
@blp.alt_response(404, schema=ErrorSchema, description="no such deduct for the caller's court")
@blp.alt_response(409, schema=ErrorSchema, description="not a deduct awaiting confirmation")
def confirm_receipt(payload: dict[str, Any], control_id: str) -> Any:
    """The court's finance system confirms money of a deduct arrived. The agency's
    word that it transferred is kept apart; a different sum stays on the follow-up list."""
    principal = current_principal()
    today = court_date(current_app.extensions["clock"]())
    with get_db().transaction() as session:
        row = session.get(Control, control_id, with_for_update=True)
        case = session.get(Case, row.case_id) if row is not None else None
        if (row is None or case is None or row.action != "deduct"
                or (principal.role != "admin" and case.court_code != principal.court)):
            raise NotFound(f"no deduct {control_id} for court {principal.court}")
        if row.state != "deducted":
            raise Conflict(f"deduct {control_id} is {row.state}: its receipt was already confirmed")
        row.state, row.received, row.received_by = "received", payload["amount"], principal.sub
        row.received_at = current_app.extensions["clock"]()
        session.flush()
        get_audit().record(session, action="control.receipt", outcome="matched" if row.received == row.amount else "mismatch",
                           actor=principal, case_number=case.case_number,
                           details={"control": row.id, "transferred": str(row.amount), "received": str(row.received),
                                    "reference": payload.get("reference")})
        body = services.ledger_view(row, today)
    return body


@blp.route("/requests/<request_id>/cancel", methods=["POST"])
@roles_required("court_officer", "approver")
@blp.response(200, RepeatViewSchema)
@blp.alt_response(404, schema=ErrorSchema, description="no repeat freeze on this request for the caller's court")
@blp.alt_response(409, schema=ErrorSchema, description="the repeat freeze already ended")
def cancel_repeat(request_id: str) -> Any:
    """Stop a repeat freeze: no more daily attempts (what is frozen stays frozen)."""
    principal = current_principal()
    set_audit_context(request_id=request_id)
    with get_db().transaction() as session:
        repeat_row = session.scalars(select(RepeatFreeze).where(RepeatFreeze.request_id == request_id)
                                     .with_for_update()).first()
        original = session.get(Request, request_id)
        if repeat_row is None or original is None or original.case.court_code != principal.court:  # the case's court (gateway/transfers/)
            raise NotFound(f"no repeat freeze on request {request_id} for court {principal.court}")
        if repeat_row.state != "active":
            raise Conflict(f"the repeat freeze of {request_id} is {repeat_row.state}")
        repeat.cancel(session, repeat_row, original, get_audit(), current_app.extensions["clock"](), principal.sub)
        return repeat.view(repeat_row)


def init_app(app: Flask, api: Any) -> None:
    api.register_blueprint(blp)
