from __future__ import annotations

from typing import Any

from urllib.parse import quote

from flask import Flask, Response, current_app, request

from gateway.api import ApiBlueprint, roles_required, set_audit_context
from gateway.auditing.log import get_audit
from gateway.auth.access import current_principal
from gateway.db import get_db
from gateway.errors import NotAcceptable
from gateway.reports import render, services
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


REPORT_TYPES = ("application/json", "text/csv", "application/pdf")
_FORMATS = {"json": "application/json", "csv": "text/csv", "pdf": "application/pdf"}


def _wanted_type() -> str:
    """``?format=csv|pdf`` (a link in a browser cannot set Accept), else the Accept header."""
    if "format" in request.args:
        wanted = _FORMATS.get(request.args["format"])
        if wanted is None:
            raise NotAcceptable(f"no report as {request.args['format']!r}", fields={"format": [
                f"must be one of: {', '.join(_FORMATS)}"]})
        return wanted
    if not request.accept_mimetypes:
        return "application/json"
    best = request.accept_mimetypes.best_match(REPORT_TYPES)
    if best is None:
        raise NotAcceptable("the report is JSON, CSV or PDF", fields={"Accept": [
            f"must accept one of: {', '.join(REPORT_TYPES)}"]})
    return best


@blp.route("/cases/<case_number>/subjects/<subject>/assets", methods=["GET"])
@roles_required("court_officer", "approver", "admin")
@blp.response(200, AssetReportSchema)
@blp.doc(responses={"200": {"content": {
    "text/csv": {"schema": {"type": "string"}, "example": ",".join(render.CSV_COLUMNS)},
    "application/pdf": {"schema": {"type": "string", "format": "binary"}}}}})
@blp.alt_response(406, schema=ErrorSchema, description="neither JSON, CSV nor PDF is acceptable (Accept, format)")
@blp.alt_response(503, schema=ErrorSchema, description="a PDF was asked for and no Chinese font is installed")
@blp.alt_response(403, schema=ErrorSchema, description="the subject is not a debtor of this case")
@blp.alt_response(404, schema=ErrorSchema, description="no such case for the caller's court")
def asset_report(case_number: str, subject: str) -> Any:
    """Every asset found for a debtor in a case, with the cash-recoverable ratio and
    the agencies that have not answered. ``subject`` is the gateway subject id (or
    the identity number). ``Accept: text/csv`` or ``application/pdf`` (or ``?format=``)
    gives the same report as a file."""
    principal = current_principal()
    # A refusal names the subject asked about the way every event does (masked and
    # keyed-hashed), so an auditor can find who tried to look at whom.
    set_audit_context(case_number=case_number, subject_id_number=identity_number_or_none(subject))
    wanted = _wanted_type()
    settings = current_app.config["SETTINGS"]
    font = render.find_font(settings.reports.pdf_font_file) if wanted == "application/pdf" else None
    with get_db().transaction() as session:
        report, subject_row = services.build_report(session, case_number, subject, principal,
                                                     today=court_date(current_app.extensions["clock"]()),
                                                     rules=current_app.extensions["control_rules"])
        get_audit().record(
            session, action="report.read", outcome="ok", actor=principal, case_number=report["case_number"],
            subject_id_number=subject_row.id_number,
            details={"assets": len(report["assets"]), "gaps": [g["agency"] for g in report["gaps"]],
                     "format": wanted},
        )
    if wanted == "application/json":
        return report
    name = f"asset-report-{report['case_number']}"
    if wanted == "text/csv":
        content: bytes = render.report_csv(report).encode("utf-8-sig")  # BOM: Excel opens UTF-8 Chinese as such
        name += ".csv"
    else:
        assert font is not None
        content = render.report_pdf(report, font_file=font, generated_at=current_app.extensions["clock"]())
        name += ".pdf"
    return Response(content, mimetype=wanted, headers={
        "Content-Disposition": f"attachment; filename*=UTF-8''{quote(name)}", "Cache-Control": "private, no-store"})


def init_app(app: Flask, api: Any) -> None:
    api.register_blueprint(blp)
