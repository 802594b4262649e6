"""Registering cases, and the purpose rule: a court asks only about a debtor of
one of its own cases. Services take a session, flush, never commit."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, bindparam, select
from sqlalchemy.orm import Session

from audit.store import AuditLog
from gateway.auth.tokens import Principal
from gateway.cases.models import Case, Party, Subject
from gateway.errors import Forbidden, NotFound, PurposeDenied
from schemas.identifiers import mask_id_number, normalise_case_number


def upsert_subject(session: Session, kind: str, name: str, id_number: str) -> Subject:
    subject = session.scalars(select(Subject).where(Subject.kind == kind, Subject.id_number == id_number)).first()
    if subject is None:
        subject = Subject(kind=kind, name=name, id_number=id_number)
        session.add(subject)
        session.flush()
    elif subject.name != name:
        subject.name = name  # the latest registration's spelling wins
    return subject


def register_case(session: Session, payload: dict[str, Any], principal: Principal, audit: AuditLog) -> tuple[Case, bool]:
    """Create the case, or update its amount and parties. A court registers only its own cases."""
    if payload["court_code"] != principal.court:
        raise Forbidden(f"court {principal.court} may not register a case of court {payload['court_code']}")
    case = session.scalars(select(Case).where(Case.case_number == payload["case_number"])).first()
    created = case is None
    if case is None:
        case = Case(case_number=payload["case_number"], court_code=payload["court_code"],
                    amount_owed=payload["amount_owed"], registered_by=principal.sub)
        session.add(case)
    elif case.court_code != principal.court:
        raise Forbidden(f"case {case.case_number} belongs to another court")
    else:
        case.amount_owed = payload["amount_owed"]
    wanted = []
    for party in payload["parties"]:
        s = party["subject"]
        wanted.append((upsert_subject(session, s["kind"], s["name"], s["id_number"]), party["role"]))
    keep = {(subject.id, role) for subject, role in wanted}
    case.parties = [p for p in case.parties if (p.subject_id, p.role) in keep]
    have = {(p.subject_id, p.role) for p in case.parties}
    for subject, role in wanted:
        if (subject.id, role) not in have:
            case.parties.append(Party(subject=subject, role=role))
    session.flush()
    audit.record(
        session,
        action="case.register" if created else "case.update",
        outcome="ok",
        actor=principal,
        case_number=case.case_number,
        details={
            "amount_owed": str(case.amount_owed),
            "parties": [{"role": role, "subject": mask_id_number(s.id_number)} for s, role in wanted],
        },
    )
    return case, created


def case_view(case: Case, created: bool) -> dict[str, Any]:
    return {
        "case_number": case.case_number,
        "court_code": case.court_code,
        "amount_owed": case.amount_owed,
        "created": created,
        "parties": [
            {"role": p.role, "subject": {"id": p.subject.id, "kind": p.subject.kind, "name": p.subject.name,
                                         "id_number": p.subject.id_number}}
            for p in sorted(case.parties, key=lambda p: (p.role, p.subject.id_number))
        ],
    }


def find_case(session: Session, case_number: str, principal: Principal) -> Case:
    """The case, if the caller's court owns it. Another court's case is 'not found'
    to that court, so case numbers cannot be probed."""
    case_number = normalise_case_number(case_number)  # a path or query may carry full-width forms
    case = session.scalars(select(Case).where(Case.case_number == case_number)).first()
    if case is None or (principal.role != "admin" and case.court_code != principal.court):
        raise NotFound(f"no case {case_number} for court {principal.court}")
    return case


@dataclass(frozen=True)
class DebtorRef:
    case_id: str
    case_number: str
    subject_id: str
    id_number: str


_DEBTOR_QUERY = (
    select(Case.id, Case.case_number, Subject.id, Subject.id_number)
    .join(Party, Party.case_id == Case.id)
    .join(Subject, Subject.id == Party.subject_id)
    .where(Case.case_number == bindparam("case_number"), Case.court_code == bindparam("court"),
           Party.role == "debtor", Subject.kind == bindparam("kind"), Subject.id_number == bindparam("id_number"))
)


def require_debtor(session: Session | Connection, principal: Principal, case_number: str, kind: str, id_number: str) -> DebtorRef:
    """The purpose rule (DESIGN.md): the subject must be a debtor of a case the
    caller's court registered. Raises PurposeDenied (403) otherwise.

    One query on the intake's hot path; the reason is worked out only on refusal.
    """
    row = session.execute(_DEBTOR_QUERY, {"case_number": case_number, "court": principal.court or "",
                                          "kind": kind, "id_number": id_number}).first()
    if row is not None:
        return DebtorRef(*row)
    court = session.scalar(select(Case.court_code).where(Case.case_number == case_number))
    if court != principal.court:
        raise PurposeDenied(f"case {case_number} is not a registered case of court {principal.court}")
    raise PurposeDenied(f"the subject is not a debtor party of case {case_number}")
