"""Recording a bankruptcy accepted against a debtor, and what follows from it
(Enterprise Bankruptcy Law art. 19: once the court accepts the application,
preservation measures against the debtor's property are released and enforcement
is suspended). Services take a session, flush, never commit.

* ``refuse_if_bankrupt``: from then on every court's new control on the debtor is
  refused at intake and at approval (inquiries are not: the administrator and the
  courts still need to know what the debtor has).
* ``record_bankruptcy`` flags each court's cases naming the subject as debtor,
  cancels the repeat freezes running for them, and prepares a release for every
  control in force or waiting: the gateway proposes it, an approver of the case's
  court decides it, as for any control.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from typing import Any, Iterable

from sqlalchemy import Connection, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from audit.store import AuditLog
from gateway.auth.tokens import Principal
from gateway.bankruptcy.models import Bankruptcy
from gateway.cases.models import Case, Party, Subject
from gateway.controls import repeat
from gateway.controls.ledger import LIVE_STATES
from gateway.controls.models import Control, RepeatFreeze
from gateway.controls.system_requests import SYSTEM, write_system_request
from gateway.errors import Conflict, Forbidden, InvalidInput, NotFound, RuleViolation
from gateway.registry import Registry
from gateway.requests.models import Request
from gateway.timeutil import court_date
from schemas.identifiers import mask_id_number

# New controls refused once bankruptcy is accepted; ending ones (unfreeze, release) are what the law asks for.
BARRED_ACTIONS = ("freeze", "renew", "deduct", "seal", "watch")
RELEASE_OF = {"freeze": "unfreeze", "seal": "release", "watch": "release"}
RULE = "Enterprise Bankruptcy Law art. 19"


def refuse_if_bankrupt(bind: Session | Connection, subject_id: str, action: str) -> None:
    """Raise RuleViolation (code ``bankruptcy_accepted``) when ``action`` is a new control
    on a debtor a court accepted a bankruptcy application against. One indexed query."""
    if action not in BARRED_ACTIONS:
        return
    row = bind.execute(select(Bankruptcy.court_code, Bankruptcy.accepted_on)
                       .where(Bankruptcy.subject_id == subject_id)).first()
    if row is None:
        return
    raise RuleViolation(
        f"{RULE}: court {row.court_code} accepted a bankruptcy application against the debtor on "
        f"{row.accepted_on.isoformat()}; enforcement is suspended and no new {action} may be placed",
        code="bankruptcy_accepted", fields={"action": [f"no {action} on a debtor in bankruptcy ({RULE})"]})


def bankruptcies_of(session: Session, subject_ids: Iterable[str]) -> dict[str, Bankruptcy]:
    ids = list(subject_ids)
    if not ids:
        return {}
    return {b.subject_id: b for b in session.scalars(select(Bankruptcy).where(Bankruptcy.subject_id.in_(ids)))}


def case_flag(session: Session, case: Case) -> dict[str, Any] | None:
    """The bankruptcy flag a case shows: the first of its debtors in bankruptcy, or None."""
    debtors = [p.subject_id for p in case.parties if p.role == "debtor"]
    found = bankruptcies_of(session, debtors)
    for subject_id in debtors:
        if subject_id in found:
            return flag_view(found[subject_id])
    return None


def flag_view(b: Bankruptcy) -> dict[str, Any]:
    return {"subject_id": b.subject_id, "court": b.court_code, "accepted_on": b.accepted_on.isoformat(),
            "administrator": b.administrator, "bankruptcy_case_number": b.bankruptcy_case_number, "rule": RULE}


@dataclass(frozen=True)
class Recorded:
    bankruptcy: Bankruptcy
    cases: list[dict[str, Any]]
    controls: list[dict[str, Any]]
    release_requests: list[str]


def record_bankruptcy(session: Session, subject_id: str, payload: dict[str, Any], principal: Principal, *,
                      registry: Registry, audit: AuditLog, now: datetime) -> Recorded:
    """Record the acceptance and prepare its consequences in this transaction.

    Raises NotFound (no subject), Forbidden (an officer of another court than the one
    accepting), InvalidInput (a date after today), RuleViolation (not an enterprise),
    Conflict (already recorded)."""
    subject = session.get(Subject, subject_id)
    if subject is None:
        raise NotFound(f"no subject {subject_id}")
    if principal.role != "admin" and payload["court"] != principal.court:
        raise Forbidden(f"court {principal.court} may record only a bankruptcy its own court accepted",
                        code="other_court")
    if payload["date"] > court_date(now):
        raise InvalidInput("the acceptance date is after today",
                           fields={"date": ["must not be after today (court date)"]})
    if subject.kind != "organization":
        raise RuleViolation(f"{RULE} applies to enterprises: the subject is a {subject.kind}",
                            fields={"subject": ["must be an organization (enterprise legal person)"]})
    if session.scalar(select(Bankruptcy.id).where(Bankruptcy.subject_id == subject.id)) is not None:
        raise Conflict(f"a bankruptcy of subject {subject.id} is already recorded")
    bankruptcy = Bankruptcy(subject_id=subject.id, court_code=payload["court"], accepted_on=payload["date"],
                            administrator=payload["administrator"],
                            bankruptcy_case_number=payload.get("bankruptcy_case_number"),
                            recorded_by=principal.sub, recorded_at=now)
    session.add(bankruptcy)
    try:
        session.flush()
    except IntegrityError:  # recorded by a concurrent call since the check above (uq_bankruptcies_subject_id)
        raise Conflict(f"a bankruptcy of subject {subject.id} is already recorded") from None
    masked = mask_id_number(subject.id_number)
    cases = list(session.scalars(select(Case).join(Party, Party.case_id == Case.id)
                                 .where(Party.subject_id == subject.id, Party.role == "debtor")
                                 .order_by(Case.court_code, Case.case_number)))
    audit.record(session, action="bankruptcy.record", outcome="ok", actor=principal,
                 subject_id_number=subject.id_number,
                 details={"bankruptcy": bankruptcy.id, "court": bankruptcy.court_code,
                          "accepted_on": bankruptcy.accepted_on.isoformat(), "administrator": bankruptcy.administrator,
                          "cases": len(cases), "subject": masked})
    for case in cases:
        audit.record(session, action="bankruptcy.case_flagged", outcome="ok", actor=principal,
                     case_number=case.case_number, subject_id_number=subject.id_number,
                     details={"bankruptcy": bankruptcy.id, "case_court": case.court_code})
    _cancel_repeats(session, subject.id, bankruptcy, audit, now)
    controls, requests = _prepare_releases(session, cases, subject, bankruptcy, registry, audit, now)
    return Recorded(bankruptcy, [{"case_number": c.case_number, "court": c.court_code} for c in cases],
                    controls, requests)


def _cancel_repeats(session: Session, subject_id: str, bankruptcy: Bankruptcy, audit: AuditLog, now: datetime) -> None:
    running = session.scalars(select(RepeatFreeze).join(Request, Request.id == RepeatFreeze.request_id)
                              .where(Request.subject_id == subject_id, RepeatFreeze.state == "active")
                              .with_for_update(of=RepeatFreeze)).all()
    for row in running:
        repeat.cancel(session, row, session.get_one(Request, row.request_id), audit, now,
                      f"bankruptcy accepted by court {bankruptcy.court_code} ({RULE})")


def _prepare_releases(session: Session, cases: list[Case], subject: Subject, bankruptcy: Bankruptcy,
                      registry: Registry, audit: AuditLog, now: datetime) -> tuple[list[dict[str, Any]], list[str]]:
    """One release request per case and ending action, awaiting an approver of the case's court."""
    listed: list[dict[str, Any]] = []
    request_ids: list[str] = []
    today = court_date(now)
    reason = (f"{RULE}: bankruptcy accepted by court {bankruptcy.court_code} on {bankruptcy.accepted_on.isoformat()}"
              f"{' (' + bankruptcy.bankruptcy_case_number + ')' if bankruptcy.bankruptcy_case_number else ''}; "
              "preservation measures are released")
    for case in cases:
        live = session.scalars(select(Control).where(Control.case_id == case.id, Control.subject_id == subject.id,
                                                     Control.state.in_(LIVE_STATES),
                                                     Control.action.in_(tuple(RELEASE_OF)))
                               .order_by(Control.placed_at, Control.id)).all()
        grouped: dict[str, dict[str, list[dict[str, Any]]]] = {}
        source: dict[str, Control] = {}
        for control in live:
            ending = RELEASE_OF[control.action]
            lapsed = control.expires_at is not None and control.expires_at < today
            entry = {"id": control.id, "case_number": case.case_number, "court": case.court_code,
                     "agency": control.agency_id, "identifier": control.identifier, "action": control.action,
                     "state": "lapsed" if lapsed else control.state, "amount": control.amount, "release": None}
            listed.append(entry)
            if lapsed:
                entry["release"] = "lapsed: nothing to release"
                continue
            if not registry.accepts(control.agency_id, ending, control.category):
                entry["release"] = (f"agency {control.agency_id} takes no {ending} through the gateway: "
                                    "release it directly")
                continue
            line = {"identifier": control.identifier, "category": control.category, "asset_id": control.asset_id,
                    "original_reference": control.agency_reference}
            if ending == "unfreeze" and control.amount is not None:
                line["amount"] = str(control.amount)
            grouped.setdefault(ending, {}).setdefault(control.agency_id, []).append(line)
            source.setdefault(ending, control)
            entry["release"] = ending
        for ending, agencies in grouped.items():
            basis = source[ending]
            request_id = write_system_request(
                session, case, subject.id, ending, agencies, basis_kind=basis.legal_basis_kind,
                basis_number=basis.legal_basis_number, reason=reason, approved_by=None, registry=registry,
                audit=audit, now=now, source_request_id=basis.request_id)
            request_ids.append(request_id)
            for entry in listed:
                if entry["case_number"] == case.case_number and entry["release"] == ending:
                    entry["release_request_id"] = request_id
    return listed, request_ids


def bankruptcy_of(session: Session, subject_id: str) -> Bankruptcy:
    row = session.scalars(select(Bankruptcy).where(Bankruptcy.subject_id == subject_id)).first()
    if row is None:
        raise NotFound(f"no bankruptcy recorded for subject {subject_id}")
    return row


def standing(session: Session, bankruptcy: Bankruptcy, principal: Principal, today: date) -> dict[str, Any]:
    """The record with the cases flagged, their controls still live and the releases
    prepared: every court's for an admin, the caller's court's for anyone else."""
    cases = select(Case.id, Case.case_number, Case.court_code).join(Party, Party.case_id == Case.id).where(
        Party.subject_id == bankruptcy.subject_id, Party.role == "debtor")
    if principal.role != "admin":
        cases = cases.where(Case.court_code == (principal.court or ""))
    case_rows = session.execute(cases.order_by(Case.court_code, Case.case_number)).all()
    numbers = {r.id: (r.case_number, r.court_code) for r in case_rows}
    controls = session.scalars(select(Control).where(Control.subject_id == bankruptcy.subject_id,
                                                     Control.case_id.in_(list(numbers)),
                                                     Control.state.in_(LIVE_STATES))
                               .order_by(Control.placed_at, Control.id)).all()
    releases = session.scalars(select(Request).where(Request.subject_id == bankruptcy.subject_id,
                                                     Request.case_id.in_(list(numbers)),
                                                     Request.officer_sub == SYSTEM.sub,
                                                     Request.action.in_(tuple(set(RELEASE_OF.values()))),
                                                     Request.created_at >= bankruptcy.recorded_at)
                               .order_by(Request.created_at, Request.id)).all()
    return {
        **flag_view(bankruptcy),
        "recorded_by": bankruptcy.recorded_by, "recorded_at": bankruptcy.recorded_at,
        "cases": [{"case_number": n, "court": c} for n, c in numbers.values()],
        "controls": [{"id": c.id, "case_number": numbers[c.case_id][0], "court": numbers[c.case_id][1],
                      "agency": c.agency_id, "identifier": c.identifier, "action": c.action,
                      "state": "lapsed" if c.expires_at and c.expires_at < today else c.state, "amount": c.amount}
                     for c in controls],
        "release_requests": [{"id": r.id, "case_number": numbers[r.case_id][0], "action": r.action,
                              "state": r.state, "decided_by": r.decided_by} for r in releases],
    }
