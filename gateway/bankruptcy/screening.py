"""Screening for bankruptcy review (执转破): enterprises that are debtors in at least N
cases terminated for want of assets (终本, gateway/termination/) are listed for the
courts to consider referring to bankruptcy review (SPC 关于执行案件移送破产审查若干问题的
指导意见, 2017). Across courts by nature, so only an admin reads it.

A case counts while its termination is in force (``terminated``; a resumed case has
property again and does not). Debtors whose bankruptcy is already recorded are left
out: they need no review.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from gateway.bankruptcy.models import Bankruptcy
from gateway.cases.models import Case, Party, Subject
from gateway.termination.models import TERMINATED, CaseTermination
from schemas.identifiers import mask_id_number


def screen(session: Session, min_cases: int) -> list[dict[str, Any]]:
    """Enterprise debtors with ``min_cases`` or more terminated cases, most first."""
    counted = (
        select(Party.subject_id, func.count(func.distinct(Case.id)).label("terminated_cases"))
        .join(Case, Case.id == Party.case_id)
        .join(CaseTermination, CaseTermination.case_id == Case.id)
        .join(Subject, Subject.id == Party.subject_id)
        .outerjoin(Bankruptcy, Bankruptcy.subject_id == Party.subject_id)
        .where(Party.role == "debtor", Subject.kind == "organization", CaseTermination.state == TERMINATED,
               Bankruptcy.id.is_(None))
        .group_by(Party.subject_id)
        .having(func.count(func.distinct(Case.id)) >= min_cases)
    ).subquery()
    subjects = session.execute(
        select(Subject, counted.c.terminated_cases).join(counted, counted.c.subject_id == Subject.id)
        .order_by(counted.c.terminated_cases.desc(), Subject.id)).all()
    cases: dict[str, list[dict[str, Any]]] = {}
    if subjects:
        rows = session.execute(
            select(Party.subject_id, Case.case_number, Case.court_code, CaseTermination.terminated_at)
            .join(Case, Case.id == Party.case_id).join(CaseTermination, CaseTermination.case_id == Case.id)
            .where(Party.role == "debtor", Party.subject_id.in_([s.id for s, _ in subjects]),
                   CaseTermination.state == TERMINATED)
            .order_by(CaseTermination.terminated_at, Case.case_number)).all()
        for row in rows:
            cases.setdefault(row.subject_id, []).append(
                {"case_number": row.case_number, "court": row.court_code, "terminated_at": row.terminated_at})
    return [{"subject_id": s.id, "name": s.name, "id_number_masked": mask_id_number(s.id_number),
             "terminated_cases": n, "courts": sorted({c["court"] for c in cases.get(s.id, [])}),
             "cases": cases.get(s.id, [])}
            for s, n in subjects]
