from __future__ import annotations

from typing import Any

from flask import Flask, current_app

from gateway.api import ApiBlueprint, roles_required, set_audit_context
from gateway.audit_service import get_audit
from gateway.auth.access import current_principal
from gateway.db import get_db
from gateway.reports import services
from gateway.timeutil import court_date
from schemas.canonical import AssetReportSchema, ErrorSchema
from schemas.identifiers import IdentifierError, check_resident_id, check_uscc


def identity_number_or_none(value: str) -> str | None:
    """``value`` as a checked identity number, or None if it is not one (a gateway subject id)."""
    for check in (check_resident_id, check_uscc):
        try:
            return check(value)
        except IdentifierError:
            continue
    return None

blp = ApiBlueprint("reports", __name__, url_prefix="/api/v1", description="Asset reports")


@blp.route("/cases/<case_number>/subjects/<subject>/assets", methods=["GET"])
@roles_required("court_officer", "approver", "admin")
@blp.response(200, AssetReportSchema)
@blp.alt_response(403, schema=ErrorSchema, description="the subject is not a debtor of this case")
@blp.alt_response(404, schema=ErrorSchema, description="no such case for the caller's court")
def asset_report(case_number: str, subject: str) -> Any:
    """Every asset found for a debtor in a case, with the cash-recoverable ratio and
    the agencies that have not answered. ``subject`` is the gateway subject id (or
    the identity number)."""
    principal = current_principal()
    # A refusal names the subject asked about the way every event does (masked and
    # keyed-hashed), so an auditor can find who tried to look at whom.
    set_audit_context(case_number=case_number, subject_id_number=identity_number_or_none(subject))
    with get_db().transaction() as session:
        report, subject_row = services.build_report(session, case_number, subject, principal,
                                                     today=court_date(current_app.extensions["clock"]()),
                                                     rules=current_app.extensions["control_rules"])
        get_audit().record(
            session, action="report.read", outcome="ok", actor=principal, case_number=report["case_number"],
            subject_id_number=subject_row.id_number,
            details={"assets": len(report["assets"]), "gaps": [g["agency"] for g in report["gaps"]]},
        )
    return report


def init_app(app: Flask, api: Any) -> None:
    api.register_blueprint(blp)
