"""The judges' pages: the queue of controls awaiting approval, each with what a
decision needs (amount, target accounts with their last reported balances, legal
basis, the PDF inline, the proposer, the debtor's other controls at this court),
and the decision itself through ``gateway.requests.services.decide`` (so a
proposer approving their own control is refused there, ``self_approval``, and
shown so here).
"""

from __future__ import annotations

from typing import Any

from flask import current_app, redirect, render_template, request, url_for
from sqlalchemy import select

from gateway.auditing.log import get_audit
from gateway.cases.models import Case
from gateway.casework.views import audit_read, bp, person, refused
from gateway.controls.ledger import LIVE_STATES
from gateway.controls.models import Control
from gateway.controls.services import ledger_view
from gateway.db import get_db
from gateway.errors import Forbidden, GatewayError
from gateway.people.language import explain, translate
from gateway.people.views import audit_console_refusal
from gateway.requests import queries, services
from gateway.requests.models import Request
from gateway.timeutil import court_date, utc_now

QUEUE_SIZE = 20


def _other_controls(session: Any, subject_ids: set[str], court: str | None, today: Any) -> dict[str, list[dict[str, Any]]]:
    """Per debtor, the controls in force or waiting on them in any case of this court."""
    if not subject_ids:
        return {}
    rows = session.execute(
        select(Control.__table__, Case.case_number).join(Case, Case.id == Control.case_id)
        .where(Control.subject_id.in_(subject_ids), Case.court_code == (court or ""),
               Control.state.in_(LIVE_STATES + ("deducted",)))
        .order_by(Control.expires_at)
    )
    found: dict[str, list[dict[str, Any]]] = {}
    for row in rows:
        found.setdefault(row.subject_id, []).append({**ledger_view(row, today), "case_number": row.case_number})
    return found


def queue_page(*, error: str | None = None, notice: str | None = None, status: int = 200,
               failed_request: str | None = None) -> Any:
    user = person()
    if user.role != "approver":
        return refused(translate("error.role", role=translate(f"role.{user.role}"), needed=translate("role.approver")),
                       403)
    today = court_date(current_app.extensions["clock"]())
    with get_db().transaction() as session:
        page = queries.find_requests(session, user, {"awaiting_approval": True}, cursor=request.args.get("cursor"),
                                     limit=QUEUE_SIZE)
        ids = [r["id"] for r in page.requests]
        subjects = dict(session.execute(select(Request.id, Request.subject_id).where(Request.id.in_(ids))).all()) \
            if ids else {}
        others = _other_controls(session, set(subjects.values()), user.court, today)
        for item in page.requests:
            item["other_controls"] = others.get(subjects[item["id"]], [])
        audit_read(session, "approvals", returned=len(ids))
    return render_template("console/casework/approvals.html", user=user, queue=page.requests,
                           next_cursor=page.next_cursor, error=error, notice=notice,
                           failed_request=failed_request), status


@bp.get("/approvals")
def approvals() -> Any:
    done = request.args.get("decided")
    outcome = request.args.get("outcome")
    notice = translate(f"decided.{outcome}", id=done) if done and outcome in ("approved", "rejected") else None
    return queue_page(notice=notice)


@bp.post("/approvals/<request_id>")
def decide(request_id: str) -> Any:
    user = person()
    if user.role != "approver":
        return queue_page()  # refused there, naming the role
    approve = request.form.get("decision") == "approve"
    reason = (request.form.get("reason") or "").strip()[:500] or None
    if request.form.get("decision") not in ("approve", "reject"):
        return queue_page(error="decision: approve or reject", status=400, failed_request=request_id)
    if not approve and not reason:
        return queue_page(error=translate("error.reason_required"), status=422, failed_request=request_id)
    try:
        with get_db().transaction() as session:
            services.decide(session, request_id, user, approve=approve, reason=reason,
                            registry=current_app.extensions["registry"], audit=get_audit(), now=utc_now())
    except Forbidden as exc:
        audit_console_refusal(exc.http_status, exc.code, exc.message, request_id=request_id)
        message = translate("error.self_approval") if exc.code == "self_approval" else exc.message
        return queue_page(error=f"{message} ({exc.code})", status=403, failed_request=request_id)
    except GatewayError as exc:
        audit_console_refusal(exc.http_status, exc.code, exc.message, request_id=request_id)
        return queue_page(error=f"{translate('error.prefix')}{explain(exc.code, exc.message)}", status=exc.http_status,
                          failed_request=request_id)
    if approve:
        current_app.extensions["worker"].wake()
    return redirect(url_for("casework.approvals", decided=request_id, outcome="approved" if approve else "rejected"))
