"""Registering cases, and the purpose rule: a court asks only about a debtor of
one of its own cases. Services take a session, flush, never commit."""

from __future__ import annotations

from dataclasses import dataclass
from typing import AbstractSet, Any

from sqlalchemy import Connection, bindparam, select
from sqlalchemy.orm import Session

from audit.store import AuditLog
from gateway.auth.tokens import Principal
from gateway.cases.courts import CourtCodes
from gateway.cases.models import Case, Party, Subject
from gateway.driver_sql import DriverStatement
from gateway.errors import Forbidden, NotFound, PurposeDenied, RuleViolation
from schemas.identifiers import mask_id_number, normalise_case_number


def find_or_add_subject(session: Session, kind: str, name: str, id_number: str) -> Subject:
    """The subject with this identity number, added if new. An existing subject is
    never renamed: the name belongs to each case's party (``Party.name``)."""
    subject = session.scalars(select(Subject).where(Subject.kind == kind, Subject.id_number == id_number)).first()
    if subject is None:
        subject = Subject(kind=kind, name=name, id_number=id_number)
        session.add(subject)
        session.flush()
    return subject


def names_elsewhere(session: Session, subject_id: str, case_id: str | None) -> set[str]:
    """The names other cases registered this subject under."""
    query = select(Party.name).where(Party.subject_id == subject_id).distinct()
    if case_id is not None:
        query = query.where(Party.case_id != case_id)
    return set(session.scalars(query))


def debtor_name(bind: Session | Connection, case_id: str, subject: Subject) -> str:
    """The name this case registered its debtor under (each case party keeps its own)."""
    name = bind.execute(select(Party.name).where(Party.case_id == case_id, Party.subject_id == subject.id,
                                                 Party.role == "debtor")).scalar()
    return name or subject.name


def register_case(session: Session, payload: dict[str, Any], principal: Principal, audit: AuditLog, *,
                  courts: CourtCodes) -> tuple[Case, bool, set[str]]:
    """Create the case, or update its amount and parties. A court registers only its own
    cases, under case numbers of its own court part (``courts``, the court code table):
    checked before the case is looked up, so whether another court's number exists
    cannot be learnt here.

    Each party keeps the name this case gives it; another case naming the same
    identity number otherwise keeps its own. Returns the case, whether it was
    created, and the ids of subjects other cases registered under another name
    (flagged in the reply and the audit log, not refused: the court may know better,
    and a court officer must be told rather than have the other case rewritten)."""
    _check_case_number(session, payload, principal, courts)
    case, created = _case_to_register(session, payload, principal)
    wanted, conflicts = _set_parties(session, case, payload["parties"])
    session.flush()
    details: dict[str, Any] = {
        "amount_owed": str(case.amount_owed),
        "parties": [{"role": role, "subject": mask_id_number(s.id_number)} for s, role, _ in wanted],
    }
    if conflicts:
        details["name_conflicts"] = sorted({mask_id_number(s.id_number) for s, _, _ in wanted if s.id in conflicts})
    audit.record(
        session,
        action="case.register" if created else "case.update",
        outcome="ok",
        actor=principal,
        case_number=case.case_number,
        details=details,
    )
    return case, created, conflicts


def _check_case_number(session: Session, payload: dict[str, Any], principal: Principal, courts: CourtCodes) -> None:
    """The caller's own court, under a case number of its court part (or a case moved here)."""
    if payload["court_code"] != principal.court:
        raise Forbidden(f"court {principal.court} may not register a case of court {payload['court_code']}")
    try:
        courts.check(payload["court_code"], payload["case_number"])  # the caller's court, checked above
    except RuleViolation:
        # A case moved here from another court (gateway/transfers/) keeps its number, whose
        # court part is the original court's: the court now holding it may update it. Only
        # a case the caller's court holds is looked at, so nothing is learnt of others.
        held = session.scalar(select(Case.id).where(Case.case_number == payload["case_number"],
                                                    Case.court_code == principal.court))
        if held is None:
            raise


def _case_to_register(session: Session, payload: dict[str, Any], principal: Principal) -> tuple[Case, bool]:
    """The new case, or the caller's court's existing one with its amount updated; whether it is new."""
    case = session.scalars(select(Case).where(Case.case_number == payload["case_number"])).first()
    if case is None:
        case = Case(case_number=payload["case_number"], court_code=payload["court_code"],
                    amount_owed=payload["amount_owed"], registered_by=principal.sub)
        session.add(case)
        return case, True
    if case.court_code != principal.court:
        raise Forbidden(f"case {case.case_number} belongs to another court")
    case.amount_owed = payload["amount_owed"]
    return case, False


def _set_parties(session: Session, case: Case, parties: list[dict[str, Any]]
                 ) -> tuple[list[tuple[Subject, str, str]], set[str]]:
    """The case's parties made those asked, each under this case's own name; returns them
    (subject, role, name) and the ids of subjects other cases name otherwise."""
    wanted: list[tuple[Subject, str, str]] = []
    conflicts: set[str] = set()
    for party in parties:
        s = party["subject"]
        subject = find_or_add_subject(session, s["kind"], s["name"], s["id_number"])
        if names_elsewhere(session, subject.id, case.id) - {s["name"]}:
            conflicts.add(subject.id)
        wanted.append((subject, party["role"], s["name"]))
    names = {(subject.id, role): name for subject, role, name in wanted}
    case.parties = [p for p in case.parties if (p.subject_id, p.role) in names]
    for p in case.parties:
        p.name = names[(p.subject_id, p.role)]  # this case's own spelling, corrected
    have = {(p.subject_id, p.role) for p in case.parties}
    for subject, role, name in wanted:
        if (subject.id, role) not in have:
            case.parties.append(Party(subject=subject, role=role, name=name))
    return wanted, conflicts


def case_view(case: Case, created: bool, name_conflicts: AbstractSet[str] = frozenset()) -> dict[str, Any]:
    """The case as the API shows it. ``name_conflict`` marks a party whose identity
    number another case registered under another name (that name is not shown:
    it is the other court's data)."""
    return {
        "case_number": case.case_number,
        "court_code": case.court_code,
        "amount_owed": case.amount_owed,
        "created": created,
        "parties": [
            {"role": p.role, "name_conflict": p.subject_id in name_conflicts,
             "subject": {"id": p.subject.id, "kind": p.subject.kind, "name": p.name, "id_number": p.subject.id_number}}
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


_DEBTOR_ON_DRIVER = DriverStatement(_DEBTOR_QUERY)


def require_debtor(session: Session | Connection, principal: Principal, case_number: str, kind: str, id_number: str) -> DebtorRef:
    """The purpose rule (DESIGN.md): the subject must be a debtor of a case the
    caller's court registered. Raises PurposeDenied (403) otherwise.

    One query on the intake's hot path; the reason is worked out only on refusal.
    """
    rows = _DEBTOR_ON_DRIVER.execute(session, {"case_number": case_number, "court": principal.court or "",
                                               "kind": kind, "id_number": id_number})
    if rows:
        return DebtorRef(*rows[0])
    court = session.scalar(select(Case.court_code).where(Case.case_number == case_number))
    if court != principal.court:
        raise PurposeDenied(f"case {case_number} is not a registered case of court {principal.court}")
    raise PurposeDenied(f"the subject is not a debtor party of case {case_number}")
