"""Terminating a case (终本), resuming it, and what both rest on.

The check reads what the gateway itself saw (the case's inquiry deliveries and their
answers, the case's filing time) and hands it to the pure rules (``rules.py``).
Services take a session, flush, never commit.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Iterable

from sqlalchemy import Connection, select
from sqlalchemy.orm import Session

from audit.store import AuditLog
from gateway.auth.tokens import Principal
from gateway.cases.models import Case, Subject
from gateway.controls.services import lock_case
from gateway.deliveries.models import Asset, Delivery
from gateway.deliveries.states import DeliveryState
from gateway.errors import Conflict, RuleViolation
from gateway.registry import Registry
from gateway.requests.models import Request
from gateway.settings import TerminationSection
from gateway.termination import rules
from gateway.termination.models import RESUMED, TERMINATED, CaseTermination, TerminationRequery
from gateway.timeutil import as_utc, court_date
from schemas.identifiers import mask_id_number


def debtors_of(case: Case) -> list[Subject]:
    return sorted((p.subject for p in case.parties if p.role == "debtor"), key=lambda s: s.id_number)


def debtor_label(subject: Subject) -> str:
    return f"{subject.name} ({mask_id_number(subject.id_number)})"


def serving_agencies(registry: Registry, categories: Iterable[str]) -> dict[str, list[str]]:
    return {c: sorted(r.agency.id for r in registry.route("inquiry", [c])) for c in categories}


def _attempts(session: Session, case_id: str) -> list[rules.Attempt]:
    rows = session.execute(
        select(Request.subject_id, Delivery.agency_id, Delivery.categories, Delivery.state, Request.id, Delivery.id,
               Delivery.answered_at, Delivery.reused_from)
        .join(Request, Request.id == Delivery.request_id)
        .where(Request.case_id == case_id, Request.action == "inquiry")
        .order_by(Delivery.created_at.desc(), Delivery.id))
    return [rules.Attempt(r[0], r[1], tuple(r[2] or ()), r[3], r[4], r[5], as_utc(r[6]) if r[6] else None, r[7])
            for r in rows]


def check(session: Session, case: Case, *, settings: TerminationSection, registry: Registry,
          now: datetime) -> dict[str, Any]:
    """Each condition the gateway can prove, met or not, with its evidence and gaps."""
    debtors = [rules.Debtor(s.id, debtor_label(s)) for s in debtors_of(case)]
    conditions = [
        rules.inquiry_condition(debtors, settings.required_categories,
                                serving_agencies(registry, settings.required_categories), _attempts(session, case.id)),
        rules.filing_condition(court_date(case.created_at), court_date(now), settings.min_months_after_filing),
    ]
    return {"case_number": case.case_number, "as_of": now.isoformat(), "ready": all(c.met for c in conditions),
            "required_categories": list(settings.required_categories),
            "conditions": [c.view() for c in conditions],
            "not_provable_by_gateway": [dict(item) for item in rules.NOT_PROVABLE]}


def in_force(session: Session | Connection, case_id: str) -> CaseTermination | None:
    return session.scalars(select(CaseTermination).where(CaseTermination.case_id == case_id,
                                                         CaseTermination.state == TERMINATED)).first()


def latest(session: Session, case_id: str) -> CaseTermination | None:
    return session.scalars(select(CaseTermination).where(CaseTermination.case_id == case_id)
                           .order_by(CaseTermination.terminated_at.desc())).first()


def found_assets(session: Session | Connection, request_ids: list[str]) -> list[dict[str, Any]]:
    """The assets the answers of these inquiries show (a reused answer's are its source's)."""
    if not request_ids:
        return []
    deliveries = session.execute(
        select(Delivery.id, Delivery.reused_from, Request.subject_id).join(Request, Request.id == Delivery.request_id)
        .where(Request.id.in_(request_ids), Delivery.state == DeliveryState.ANSWERED)).all()
    source_subject = {d.reused_from or d.id: d.subject_id for d in deliveries}
    if not source_subject:
        return []
    rows = session.execute(select(Asset).where(Asset.delivery_id.in_(list(source_subject)))).scalars()
    return [{"subject_id": a.subject_id, "agency": a.agency_id, "identifier": a.identifier, "category": a.category,
             "asset_id": a.id, "balance": None if a.balance is None else str(a.balance),
             "value": None if a.value is None else str(a.value)}
            for a in rows if a.subject_id == source_subject[a.delivery_id]]


def _known_assets(session: Session, case: Case) -> list[dict[str, Any]]:
    request_ids = list(session.scalars(select(Request.id).where(Request.case_id == case.id,
                                                               Request.action == "inquiry")))
    return [{k: a[k] for k in ("subject_id", "agency", "identifier", "category")}
            for a in rules.new_assets([], found_assets(session, request_ids))]


def terminate(session: Session, case: Case, principal: Principal, *, reason: str, ruling_number: str | None,
              settings: TerminationSection, registry: Registry, audit: AuditLog, now: datetime) -> CaseTermination:
    """Record the termination, or raise RuleViolation (422) naming each condition not met
    and what it lacks, or Conflict if the case is terminated already."""
    lock_case(session, case.id)  # two officers terminating at once: the second sees the first
    if in_force(session, case.id) is not None:
        raise Conflict(f"case {case.case_number} is terminated already; resume it first")
    result = check(session, case, settings=settings, registry=registry, now=now)
    missing = {c["name"]: c["gaps"] for c in result["conditions"] if not c["met"]}
    if missing:
        raise RuleViolation(f"case {case.case_number} may not be terminated yet: "
                            f"{sum(len(g) for g in missing.values())} condition gap(s)",
                            fields=missing, code="termination_not_ready")
    until = rules.shift_months(now, 12 * settings.requery_years)
    row = CaseTermination(
        case_id=case.id, court_code=case.court_code, state=TERMINATED, terminated_by=principal.sub, terminated_at=now,
        reason=reason, ruling_number=ruling_number, categories=list(settings.required_categories), evidence=result,
        known_assets=_known_assets(session, case), next_round=1,
        next_requery_at=rules.next_due(now, 1, settings.requery_every_months, until), requery_until=until)
    session.add(row)
    session.flush()
    audit.record(session, action="termination.terminated", outcome="ok", actor=principal, case_number=case.case_number,
                 details={"termination": row.id, "reason": reason, "ruling_number": ruling_number,
                          "known_assets": len(row.known_assets), "first_requery_at": _iso(row.next_requery_at),
                          "requery_until": until.isoformat(), "every_months": settings.requery_every_months,
                          "evidence": _evidence_summary(result)})
    return row


def _evidence_summary(result: dict[str, Any]) -> dict[str, Any]:
    """Which answers the termination rests on (request ids), for the audit event."""
    answered = sorted({a["request_id"] for c in result["conditions"] if c["name"] == rules.NETWORK_INQUIRIES
                       for d in c["evidence"] for cat in d["categories"] for a in cat["agencies"] if a["answered"]})
    filing = next(c["evidence"] for c in result["conditions"] if c["name"] == rules.FILING_AGE)
    return {"answered_requests": answered, "filed_on": filing["filed_on"], "today": filing["today"]}


def resume(session: Session, case: Case, principal: Principal, *, reason: str, audit: AuditLog,
           now: datetime) -> CaseTermination:
    """The case is enforced again: no more scheduled re-inquiries. Conflict if not terminated."""
    lock_case(session, case.id)
    row = in_force(session, case.id)
    if row is None:
        raise Conflict(f"case {case.case_number} is not terminated")
    row.state, row.resumed_by, row.resumed_at, row.resume_reason = RESUMED, principal.sub, now, reason
    row.next_requery_at = None
    session.flush()
    audit.record(session, action="termination.resumed", outcome="ok", actor=principal, case_number=case.case_number,
                 details={"termination": row.id, "reason": reason, "rounds_made": row.next_round - 1,
                          "resumable_since": _iso(row.resumable_since)})
    return row


def _iso(moment: datetime | None) -> str | None:
    return as_utc(moment).isoformat() if moment is not None else None


def rounds_of(session: Session, termination_id: str) -> list[TerminationRequery]:
    return list(session.scalars(select(TerminationRequery).where(TerminationRequery.termination_id == termination_id)
                                .order_by(TerminationRequery.round)))


def termination_view(session: Session, case: Case, row: CaseTermination) -> dict[str, Any]:
    return {
        "id": row.id, "case_number": case.case_number, "state": row.state, "terminated_by": row.terminated_by,
        "terminated_at": _iso(row.terminated_at), "reason": row.reason, "ruling_number": row.ruling_number,
        "categories": list(row.categories), "known_assets": len(row.known_assets),
        "next_requery_at": _iso(row.next_requery_at), "requery_until": _iso(row.requery_until),
        "resumable_since": _iso(row.resumable_since), "resumed_by": row.resumed_by, "resumed_at": _iso(row.resumed_at),
        "resume_reason": row.resume_reason,
        "requeries": [{"round": r.round, "due_at": _iso(r.due_at), "made_at": _iso(r.made_at), "state": r.state,
                       "request_ids": list(r.request_ids), "finished_at": _iso(r.finished_at),
                       "new_assets": r.new_assets, "creditor_notice": r.creditor_notice}
                      for r in rounds_of(session, row.id)],
    }


def resumable_rows(bind: Session | Connection, *, court_code: str | None, case_id: str | None) -> list[dict[str, Any]]:
    """New assets found by re-inquiries of cases still terminated (the follow-up list's
    "resume" items), with their case number."""
    query = (select(TerminationRequery.round, TerminationRequery.finished_at, TerminationRequery.new_assets,
                    CaseTermination.terminated_at, Case.case_number)
             .join(CaseTermination, CaseTermination.id == TerminationRequery.termination_id)
             .join(Case, Case.id == CaseTermination.case_id)
             .where(CaseTermination.state == TERMINATED, TerminationRequery.state == "finished")
             .order_by(TerminationRequery.round))
    if court_code:
        query = query.where(Case.court_code == court_code)
    if case_id:
        query = query.where(Case.id == case_id)
    items: dict[tuple[str, str, str], dict[str, Any]] = {}
    for r in bind.execute(query):
        for asset in r.new_assets or ():
            items.setdefault((r.case_number, asset["agency"], asset["identifier"]), {
                **asset, "case_number": r.case_number, "round": r.round, "found_on": court_date(r.finished_at),
                "terminated_on": court_date(r.terminated_at)})
    return list(items.values())
