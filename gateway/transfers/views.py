"""Transfer API: an admin of a higher court moves a case; the case's court reads its moves."""

from __future__ import annotations

from typing import Any

from flask import Flask, current_app
from marshmallow import Schema, fields, validate

from gateway.api import ApiBlueprint, roles_required, set_audit_context
from gateway.auditing.log import get_audit
from gateway.auth.access import current_principal
from gateway.cases.services import find_case
from gateway.db import get_db
from gateway.transfers import services
from schemas.canonical import ErrorSchema
from schemas.fields import UtcDateTime

blp = ApiBlueprint("transfers", __name__, url_prefix="/api/v1", description="Transfer of cases between courts")


class TransferSchema(Schema):
    to_court = fields.Str(required=True, validate=validate.Regexp(r"^[0-9A-Za-z]{1,32}$"),
                          metadata={"description": "the receiving court's code"})
    order_number = fields.Str(required=True, validate=validate.Length(min=1, max=64),
                              metadata={"description": "the higher court's decision moving the case"})
    reason = fields.Str(load_default=None, validate=validate.Length(max=500))


class TransferOutSchema(Schema):
    id = fields.Str()
    from_court = fields.Str()
    to_court = fields.Str()
    ordering_court = fields.Str()
    ordered_by = fields.Str()
    order_number = fields.Str()
    reason = fields.Str(allow_none=True)
    controls_in_force = fields.Int(metadata={"description": "controls in force now attributed to the receiving court"})
    transferred_at = UtcDateTime()


class TransferListSchema(Schema):
    case_number = fields.Str()
    court_code = fields.Str()
    transfers = fields.List(fields.Nested(TransferOutSchema))


@blp.route("/cases/<case_number>/transfer", methods=["POST"])
@roles_required("admin")
@blp.arguments(TransferSchema())
@blp.response(201, TransferOutSchema)
@blp.alt_response(403, schema=ErrorSchema, description="the caller's court is not above both courts")
@blp.alt_response(404, schema=ErrorSchema, description="no such case")
def transfer_case(payload: dict[str, Any], case_number: str) -> Any:
    """Move a case to another court (交叉执行). From the commit on, the receiving court has
    the case, its requests, reports and controls, and the original court has none of them."""
    set_audit_context(case_number=case_number)
    with get_db().transaction() as session:
        transfer = services.transfer_case(session, case_number, payload, current_principal(),
                                          courts=current_app.extensions["courts"], audit=get_audit(),
                                          now=current_app.extensions["clock"]())
        return services.transfer_view(transfer), 201


@blp.route("/cases/<case_number>/transfers", methods=["GET"])
@roles_required("court_officer", "approver", "admin")
@blp.response(200, TransferListSchema)
@blp.alt_response(404, schema=ErrorSchema, description="no such case for the caller's court")
def case_transfers(case_number: str) -> Any:
    """The case's moves between courts, oldest first."""
    with get_db().transaction() as session:
        case = find_case(session, case_number, current_principal())
        return {"case_number": case.case_number, "court_code": case.court_code,
                "transfers": [services.transfer_view(t) for t in services.transfers_of(session, case.id)]}


def init_app(app: Flask, api: Any) -> None:
    api.register_blueprint(blp)
