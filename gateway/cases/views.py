from __future__ import annotations

from typing import Any

from flask import Flask, current_app

from gateway.api import ApiBlueprint, roles_required, set_audit_context
from gateway.auditing.log import get_audit
from gateway.auth.access import current_principal
from gateway.bankruptcy.services import case_flag
from gateway.cases import services
from gateway.controls.excess import release_excess
from gateway.db import get_db
from schemas.canonical import CaseOutSchema, CaseSchema, ErrorSchema

blp = ApiBlueprint("cases", __name__, url_prefix="/api/v1", description="Enforcement cases and their parties")


@blp.route("/cases", methods=["POST"])
@roles_required("court_officer")
@blp.arguments(CaseSchema())  # an instance: webargs would build one per call from a class
@blp.response(200, CaseOutSchema, description="the case was updated")
@blp.alt_response(201, schema=CaseOutSchema, description="the case was registered")
@blp.alt_response(400, schema=ErrorSchema, description="a field breaks its rule")
@blp.alt_response(422, schema=ErrorSchema, description="the case number's court part is not the caller's court's")
def register_case(payload: dict[str, Any]) -> Any:
    """Register a case with its parties and amount owed, or update them."""
    set_audit_context(case_number=payload["case_number"])
    with get_db().transaction() as session:
        case, created, name_conflicts = services.register_case(session, payload, current_principal(), get_audit(),
                                                               courts=current_app.extensions["court_codes"])
        body = services.case_view(case, created, name_conflicts)
        body["bankruptcy"] = case_flag(session, case)
        # A lower amount owed (the debtor paid) frees what is frozen above it, in this transaction.
        released = [] if created else release_excess(
            session, case.id, reason=f"amount owed now {payload['amount_owed']}",
            registry=current_app.extensions["registry"], audit=get_audit(), now=current_app.extensions["clock"]())
    if released:
        current_app.extensions["worker"].wake()
    return body, 201 if created else 200


def init_app(app: Flask, api: Any) -> None:
    api.register_blueprint(blp)
