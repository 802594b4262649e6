"""Consents and distribution plans. Services take a session, flush, never commit."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any, Sequence

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from audit.store import AuditLog
from gateway.auth.tokens import Principal
from gateway.cases.models import Case, Party, Subject
from gateway.cases.services import find_case
from gateway.controls.ledger import HOLDING_STATES, LIVE_STATES
from gateway.controls.models import Control
from gateway.controls.services import deducted_in_case
from gateway.creditors.distribution import Claim, distribute
from gateway.creditors.models import DistributionPlan, DistributionShare, FreezeConsent
from gateway.errors import Conflict, InvalidInput, NotFound, RuleViolation
from schemas.identifiers import normalise_case_number


def consent(session: Session, control_id: str, payload: dict[str, Any], principal: Principal, *, audit: AuditLog,
            now: datetime) -> FreezeConsent:
    """The case holding freeze ``control_id`` lets a later case deduct from that account.

    Raises NotFound (no such freeze for the caller's court, no such later case),
    RuleViolation (the freeze is not in force, the later case has no freeze there),
    Conflict (consent already given)."""
    control = session.get(Control, control_id)
    case = session.get(Case, control.case_id) if control is not None else None
    others = principal.role != "admin" and case is not None and case.court_code != principal.court
    if control is None or case is None or control.action != "freeze" or others:
        raise NotFound(f"no freeze {control_id} for court {principal.court}")
    if control.state not in HOLDING_STATES:
        raise RuleViolation(f"freeze {control_id} is {control.state}: nothing in force to consent over",
                            fields={"control": ["not in force"]})
    number = normalise_case_number(payload["case_number"])
    later = session.scalars(select(Case).where(Case.case_number == number)).first()
    if later is None:
        raise NotFound(f"no case {number}", fields={"case_number": ["no such case"]})
    if later.id == case.id:
        raise RuleViolation("a case does not consent to itself",
                            fields={"case_number": ["names the freeze's own case"]})
    waiting = session.scalar(select(func.count()).select_from(Control).where(
        Control.case_id == later.id, Control.agency_id == control.agency_id, Control.identifier == control.identifier,
        Control.action == "freeze", Control.state.in_(LIVE_STATES)))
    if not waiting:
        raise RuleViolation(f"case {number} has no freeze on this account", fields={"case_number": [
            "the later case must itself hold a freeze on the account"]})
    if session.scalar(select(FreezeConsent.id).where(FreezeConsent.control_id == control.id,
                                                     FreezeConsent.later_case_id == later.id)):
        raise Conflict(f"case {case.case_number} already consented to deducts by {number} on this account")
    row = FreezeConsent(control_id=control.id, later_case_id=later.id, consented_by=principal.sub, consented_at=now,
                        reason=payload.get("reason"))
    session.add(row)
    try:
        session.flush()
    except IntegrityError:  # given by a concurrent call since the check above
        raise Conflict(f"case {case.case_number} already consented to deducts by {number} on this account") from None
    audit.record(session, action="control.consent", outcome="ok", actor=principal, case_number=case.case_number,
                 details={"control": control.id, "agency": control.agency_id, "later_case": later.case_number,
                          "later_court": later.court_code, "reason": row.reason})
    return row


def _rank(session: Session, case_ids: Sequence[str], subject_id: str) -> dict[str, tuple]:
    """Earlier first: the first freeze placed on the debtor, then the earlier registered case."""
    first = dict(session.execute(select(Control.case_id, func.min(Control.placed_at)).where(
        Control.case_id.in_(list(case_ids)), Control.subject_id == subject_id, Control.action == "freeze")
        .group_by(Control.case_id)).all())
    created = dict(session.execute(select(Case.id, Case.created_at).where(Case.id.in_(list(case_ids)))).all())
    return {cid: (first.get(cid) is None, str(first.get(cid) or ""), str(created[cid]), cid) for cid in case_ids}


def make_plan(session: Session, payload: dict[str, Any], principal: Principal, *, classes: Sequence[str],
              audit: AuditLog, now: datetime) -> DistributionPlan:
    """A plan for money the caller's court received in one of its cases, over the cases
    (of any court) against the same debtor that claim a part. Each claim is what its case
    is still owed (amount owed less what deducts took). Raises InvalidInput naming the field."""
    received_in = find_case(session, payload["case_number"], principal)
    subject = session.get(Subject, payload["subject_id"])
    if subject is None or not any(p.role == "debtor" and p.subject_id == subject.id for p in received_in.parties):
        raise InvalidInput("the subject is not a debtor of the case the money came in for",
                           fields={"subject_id": ["must be a debtor of case_number"]})
    problems: dict[str, list[str]] = {}
    cases: list[tuple[Case, str]] = []
    for i, claim in enumerate(payload["claims"]):
        number = normalise_case_number(claim["case_number"])
        case = session.scalars(select(Case).join(Party, Party.case_id == Case.id).where(
            Case.case_number == number, Party.subject_id == subject.id, Party.role == "debtor")).first()
        if case is None:
            problems[f"claims[{i}].case_number"] = [f"no case {number} with this debtor"]
        elif any(case.id == c.id for c, _ in cases):
            problems[f"claims[{i}].case_number"] = ["named twice"]
        if claim["priority"] not in classes:
            problems[f"claims[{i}].priority"] = [f"one of {', '.join(classes)} (settings creditors.priority_classes)"]
        if case is not None:
            cases.append((case, claim["priority"]))
    if not problems and received_in.id not in {c.id for c, _ in cases}:
        problems["claims"] = [f"must include case {received_in.case_number}, which received the money"]
    if problems:
        raise InvalidInput("the distribution plan names claims it cannot make", fields=problems)
    ranks = _rank(session, [c.id for c, _ in cases], subject.id)
    order = {cid: i for i, cid in enumerate(sorted(ranks, key=lambda cid: ranks[cid]))}
    claims = [Claim(case.id, max(case.amount_owed - deducted_in_case(session, case.id), Decimal("0")), priority,
                    order[case.id]) for case, priority in cases]
    try:
        plan = distribute(payload["amount"], claims, classes)
    except ValueError as exc:  # the claims come from the database in cents: only the amount can be at fault
        raise InvalidInput(str(exc), fields={"amount": ["a sum of money in whole cents, not negative"]}) from None
    row = DistributionPlan(court_code=received_in.court_code, case_id=received_in.id, subject_id=subject.id,
                           amount=payload["amount"], surplus=plan.surplus, priority_classes=list(classes),
                           created_by=principal.sub, created_at=now)
    session.add(row)
    session.flush()
    numbers = {case.id: case.case_number for case, _ in cases}
    for position, share in enumerate(plan.shares):
        session.add(DistributionShare(plan_id=row.id, case_id=share.key, position=position, priority=share.priority,
                                      claim=share.claim, share=share.share))
    session.flush()
    audit.record(session, action="distribution.plan", outcome="ok", actor=principal,
                 case_number=received_in.case_number, subject_id_number=subject.id_number,
                 details={"plan": row.id, "amount": str(row.amount), "surplus": str(row.surplus),
                          "shares": {numbers[s.key]: {"priority": s.priority, "claim": str(s.claim),
                                                      "share": str(s.share)} for s in plan.shares}})
    return row


def plan_view(session: Session, plan: DistributionPlan, for_case_id: str | None = None) -> dict[str, Any]:
    rows = session.execute(select(DistributionShare, Case.case_number, Case.court_code)
                           .join(Case, Case.id == DistributionShare.case_id)
                           .where(DistributionShare.plan_id == plan.id).order_by(DistributionShare.position)).all()
    received_in = session.get_one(Case, plan.case_id)
    shares = [{"case_number": number, "court": court, "priority": s.priority, "claim": s.claim, "share": s.share}
              for s, number, court in rows]
    mine = next((v for (s, _, _), v in zip(rows, shares, strict=True) if s.case_id == for_case_id), None)
    return {"id": plan.id, "court": plan.court_code, "received_in": received_in.case_number, "amount": plan.amount,
            "surplus": plan.surplus, "priority_classes": list(plan.priority_classes), "created_by": plan.created_by,
            "created_at": plan.created_at, "shares": shares, "this_case": mine}


def plans_of_case(session: Session, case: Case) -> list[dict[str, Any]]:
    """Every plan this case has a share in (whichever court made it), oldest first."""
    plans = session.scalars(select(DistributionPlan)
                            .join(DistributionShare, DistributionShare.plan_id == DistributionPlan.id)
                            .where(DistributionShare.case_id == case.id)
                            .order_by(DistributionPlan.created_at, DistributionPlan.id)).all()
    return [plan_view(session, plan, case.id) for plan in plans]
