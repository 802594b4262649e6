"""The officers' pages: the court's cases, a case (parties, requests with their
agencies' progress, the asset report, controls in force), a freeze proposed by
ticking accounts in the report, and the follow-up lists. Judges read the same
pages and decide in gateway/casework/approvals.py.

Server-rendered over the same services as the API (never over HTTP), in the
person's court only. Every page read is an audit event (``console.read`` naming the
page; the report files ``report.read`` and documents ``document.read`` as in the
API), and a freeze goes through the API's own intake (``prepare_request`` and
``write_request``), so it is audited, capped and held for approval the same way.
Every POST carries the session's CSRF token (gateway/people/csrf.py).
"""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any
from urllib.parse import quote

from flask import Blueprint, Flask, Response, current_app, redirect, render_template, request, url_for
from marshmallow import ValidationError
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import selectinload

from gateway import paging
from gateway.attachments.services import readable_document
from gateway.auditing.log import get_audit
from gateway.auth.tokens import Principal
from gateway.casework import pages
from gateway.cases.models import Case
from gateway.cases.services import find_case
from gateway.controls.services import (
    case_ledger, cash_frozen_in_case, deducted_in_case, due_list, reserved_for_freezes,
)
from gateway.db import get_db
from gateway.errors import GatewayError, Forbidden
from gateway.people.language import explain, translate
from gateway.people.services import signed_in_person
from gateway.people.views import audit_console_refusal, refuse_without_csrf_token
from gateway.reports import render
from gateway.reports.services import build_report, find_debtor
from gateway.requests import queries, services
from gateway.requests.models import Request
from gateway.timeutil import court_date
from schemas.canonical import LEGAL_BASIS_KINDS, RequestSubmissionSchema
from schemas.identifiers import mask_id_number

bp = Blueprint("casework", __name__, url_prefix="/console")
PAGE_ROLES = ("court_officer", "approver")
_SUBMISSION = RequestSubmissionSchema()


def person() -> Principal:
    found = signed_in_person()
    assert found is not None  # _require_court_person ran first
    return found


@bp.before_request
def _require_court_person() -> Any:
    found = signed_in_person()
    if found is None:
        return redirect(url_for("people.login"))
    if found.role not in PAGE_ROLES:
        needed = ", ".join(translate(f"role.{r}") for r in PAGE_ROLES)
        audit_console_refusal(403, "forbidden", f"role {found.role} may not open the court's pages")
        return refused(translate("error.role", role=translate(f"role.{found.role}"), needed=needed), 403)
    return refuse_without_csrf_token()


def refused(message: str, status: int) -> Any:
    return render_template("console/refused.html", user=signed_in_person(), message=message), status


@bp.errorhandler(GatewayError)
def _gateway_error(exc: GatewayError) -> Any:
    audit_console_refusal(exc.http_status, exc.code, exc.message)
    return refused(explain(exc.code, exc.message), exc.http_status)


def audit_read(session: Any, page: str, *, case_number: str | None = None, subject_id_number: str | None = None,
               request_id: str | None = None, **details: Any) -> None:
    get_audit().record(session, action="console.read", outcome="ok", actor=person(), case_number=case_number,
                       subject_id_number=subject_id_number, request_id=request_id, details={"page": page, **details})


def _today() -> Any:
    return court_date(current_app.extensions["clock"]())


CASES_PER_PAGE = 50
_CASES_CURSOR = "cases:"


@bp.get("/cases")
def cases() -> Any:
    """The court's cases, newest first, a page at a time (a court registers thousands)."""
    user = person()
    query = (select(Case).where(Case.court_code == (user.court or "")).options(selectinload(Case.parties))
             .order_by(Case.created_at.desc(), Case.id.desc()))
    if request.args.get("cursor"):
        query = query.where(paging.older_than(_CASES_CURSOR, request.args["cursor"], Case.created_at, Case.id))
    with get_db().transaction() as session:
        rows = list(session.scalars(query.limit(CASES_PER_PAGE + 1)))
        more, rows = len(rows) > CASES_PER_PAGE, rows[:CASES_PER_PAGE]
        counts = dict(session.execute(select(Request.case_id, func.count())
                                      .where(Request.case_id.in_([c.id for c in rows])).group_by(Request.case_id)).all())
        views = [{"case_number": c.case_number, "amount_owed": c.amount_owed, "created_at": c.created_at,
                  "requests": counts.get(c.id, 0),
                  "debtors": [p.name for p in c.parties if p.role == "debtor"]} for c in rows]
        audit_read(session, "cases", returned=len(views))
    next_cursor = paging.encode_newest_first(_CASES_CURSOR, rows[-1].created_at, rows[-1].id) if more else None
    return render_template("console/casework/cases.html", user=user, cases=views, next_cursor=next_cursor)


def case_page(case_number: str, *, error: str | None = None, status: int = 200, notice: str | None = None) -> Any:
    """The case page, also re-rendered with the intake's refusal when a freeze is refused."""
    user, today = person(), _today()
    registry, rules = current_app.extensions["registry"], current_app.extensions["control_rules"]
    with get_db().transaction() as session:
        case = find_case(session, case_number, user)
        parties = [{"role": p.role, "name": p.name, "kind": p.subject.kind,
                    "id_number_masked": mask_id_number(p.subject.id_number)}
                   for p in sorted(case.parties, key=lambda p: (p.role != "debtor", p.name))]
        reports = []
        for party in case.parties:
            if party.role != "debtor":
                continue
            report, _ = build_report(session, case.case_number, party.subject.id, user, today=today, rules=rules)
            for asset in report["assets"]:
                asset["freezable"] = pages.freezable(asset, registry.accepts)
            report["ratio_percent"] = pages.ratio_percent(report["cash_recoverable_ratio"])
            reports.append(report)
        requested = queries.find_requests(session, user, {"case_number": case.case_number}, cursor=None, limit=50)
        ledger = case_ledger(session, case.id, today)
        cap = pages.freeze_cap(case.amount_owed, deducted_in_case(session, case.id),
                               cash_frozen_in_case(session, case.id, today), reserved_for_freezes(session, case.id))
        audit_read(session, "case", case_number=case.case_number, reports=len(reports),
                   requests=len(requested.requests), controls=len(ledger))
    return render_template(
        "console/casework/case.html", user=user, case=case, parties=parties, reports=reports,
        requests=requested.requests, ledger=ledger, cap=cap, basis_kinds=LEGAL_BASIS_KINDS, error=error,
        notice=notice, idempotency_key=f"console-{uuid.uuid4()}", proposing=user.role == "court_officer",
    ), status


@bp.get("/cases/<case_number>")
def case(case_number: str) -> Any:
    proposed = request.args.get("proposed")
    return case_page(case_number, notice=translate("freeze.proposed", id=proposed) if proposed else None)


@bp.get("/cases/<case_number>/subjects/<subject_id>/report.<fmt>")
def report_file(case_number: str, subject_id: str, fmt: str) -> Any:
    """The asset report as the API's ``?format=csv|pdf`` gives it, for the console's cookie session."""
    if fmt not in ("csv", "pdf"):
        return refused(f"no report as {fmt!r}: csv or pdf", 404)
    user, settings = person(), current_app.config["SETTINGS"]
    font = render.find_font(settings.reports.pdf_font_file) if fmt == "pdf" else None
    with get_db().transaction() as session:
        report, subject = build_report(session, case_number, subject_id, user, today=_today(),
                                       rules=current_app.extensions["control_rules"])
        get_audit().record(session, action="report.read", outcome="ok", actor=user, case_number=report["case_number"],
                           subject_id_number=subject.id_number,
                           details={"assets": len(report["assets"]), "gaps": [g["agency"] for g in report["gaps"]],
                                    "format": "text/csv" if fmt == "csv" else "application/pdf", "via": "console"})
    name = f"asset-report-{report['case_number']}.{fmt}"
    if fmt == "csv":
        content, media_type = render.report_csv(report).encode("utf-8-sig"), "text/csv"
    else:
        assert font is not None
        content = render.report_pdf(report, font_file=font, generated_at=current_app.extensions["clock"]())
        media_type = "application/pdf"
    return Response(content, mimetype=media_type, headers={
        "Content-Disposition": f"attachment; filename*=UTF-8''{quote(name)}", "Cache-Control": "private, no-store"})


@bp.post("/cases/<case_number>/freeze")
def propose_freeze(case_number: str) -> Any:
    """A freeze of the ticked accounts, through the API's intake: held for a judge's approval."""
    user = person()
    if user.role != "court_officer":
        raise Forbidden("a freeze is proposed by a court officer", code="role")
    try:
        freeze = pages.read_freeze_form(request.form, request.form.getlist("targets"), request.files.get("document"))
    except pages.FormProblem as problem:
        audit_console_refusal(400, "invalid_input", f"{problem.field}: {problem.message}", case_number=case_number)
        return case_page(case_number, error=f"{problem.field}: {problem.message}", status=400)
    with get_db().reading() as session:
        case_row = find_case(session, case_number, user)
        party = find_debtor(case_row, freeze.subject_id)  # the case's own party: its name is this case's
        subject_view = {"kind": party.subject.kind, "name": party.name, "id_number": party.subject.id_number}
        case_number = case_row.case_number
    raw = pages.freeze_submission(freeze, case_number, subject_view)
    try:
        payload = _SUBMISSION.load(raw)
    except ValidationError as exc:
        problems = pages.problems_text(exc.normalized_messages())
        audit_console_refusal(400, "invalid_input", problems, case_number=case_number,
                              subject_id_number=subject_view["id_number"])
        return case_page(case_number, error=problems, status=400)
    key, digest = freeze.idempotency_key, services.payload_digest(raw)
    db, audit, settings = get_db(), get_audit(), current_app.config["SETTINGS"]
    try:
        with db.connection_transaction() as connection:
            prepared = services.prepare_request(
                connection, payload, principal=user, idempotency_key=key, digest=digest,
                registry=current_app.extensions["registry"], now=current_app.extensions["clock"](),
                reuse_window=timedelta(seconds=settings.reuse.freshness_seconds),
                rules=current_app.extensions["control_rules"], max_document_bytes=settings.documents.max_bytes,
                limits=settings.limits)
            services.write_request(connection, prepared, principal=user, audit=audit)
        request_id = prepared.reply["id"]
    except IntegrityError:
        # The same form sent twice (its Idempotency-Key is made when the page is drawn).
        with db.transaction() as session:
            replay = services.find_replay(session, user, key, digest)
        if replay is None:
            raise
        request_id = replay["id"]
    except GatewayError as exc:
        detail = f" ({pages.problems_text(exc.fields)})" if exc.fields else ""
        audit_console_refusal(exc.http_status, exc.code, f"{exc.message}{detail}", case_number=case_number,
                              subject_id_number=subject_view["id_number"])
        return case_page(case_number, error=explain(exc.code, f"{exc.message}{detail}"), status=exc.http_status)
    return redirect(url_for("casework.case", case_number=case_number, proposed=request_id))


@bp.get("/follow-up")
def follow_up() -> Any:
    user = person()
    with get_db().transaction() as session:
        body = due_list(session, current_app.extensions["control_rules"], current_app.extensions["clock"](),
                        court_code=user.court, case_id=None)
        audit_read(session, "follow_up", items=len(body["items"]))
    grouped = {kind: [i for i in body["items"] if i["kind"] == kind] for kind in pages.FOLLOW_UP_KINDS}
    return render_template("console/casework/follow_up.html", user=user, grouped=grouped, as_of=body["as_of"])


@bp.get("/documents/<sha256>")
def document(sha256: str) -> Any:
    """A legal document the court's requests carry, inline (the judge reads it in the page)."""
    user = person()
    with get_db().transaction() as session:
        found, name = readable_document(session, sha256.lower(), user)
        get_audit().record(session, action="document.read", outcome="ok", actor=user,
                           details={"sha256": found.sha256, "media_type": found.media_type, "via": "console"})
        content, media_type = found.content, found.media_type
    return Response(content, mimetype=media_type, headers={
        "Content-Disposition": f"inline; filename*=UTF-8''{quote(name)}", "X-Content-Type-Options": "nosniff",
        "Cache-Control": "private, no-store", "Content-Security-Policy": "frame-ancestors 'self'"})


def init_app(app: Flask) -> None:
    from gateway.casework import approvals  # noqa: F401  (the judges' routes, on the same blueprint)

    app.register_blueprint(bp)
