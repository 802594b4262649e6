"""Release of excess: freezes above what is still owed are released by the gateway.

What is still owed is the amount owed less what deducts took. When it falls below
the money frozen (a deduct landed, the debtor paid and the court lowered the
amount owed), the gateway itself proposes an ``unfreeze`` of the difference and
approves it at once, recording the reason: holding money beyond the debt is what
the law forbids, so an excess must not wait on a person (README, "Controls").
Partial releases go smallest freeze first, so whole accounts come free.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from audit.store import AuditLog
from gateway.cases.models import Case
from gateway.controls.models import Control
from gateway.controls.system_requests import SYSTEM, write_system_request
from gateway.deliveries.models import Delivery
from gateway.controls.services import PENDING_DELIVERY_STATES, cash_frozen_in_case, deducted_in_case, lock_case
from gateway.registry import Registry
from gateway.requests.models import Request
from gateway.timeutil import court_date
from schemas.vocabulary import CASH_CATEGORIES


def _pending_release(session: Session, case_id: str) -> Decimal:
    rows = session.execute(
        select(Delivery.lines).join(Request, Request.id == Delivery.request_id)
        .where(Request.case_id == case_id, Request.action == "unfreeze", Delivery.state.in_(PENDING_DELIVERY_STATES))
    )
    return sum((Decimal(line["amount"]) for (lines,) in rows for line in lines or ()
                if line.get("amount") and line.get("category") in CASH_CATEGORIES), Decimal("0"))


def excess_in_case(session: Session, case_id: str, now: datetime) -> Decimal:
    """Money frozen (less releases on their way) above what is still owed; 0 if none."""
    owed = session.scalar(select(Case.amount_owed).where(Case.id == case_id)) or Decimal("0")
    still_owed = max(owed - deducted_in_case(session, case_id), Decimal("0"))
    frozen = Decimal(cash_frozen_in_case(session, case_id, court_date(now))) - _pending_release(session, case_id)
    return max(frozen - still_owed, Decimal("0"))


def release_excess(session: Session, case_id: str, *, reason: str, registry: Registry, audit: AuditLog,
                   now: datetime) -> list[str]:
    """Propose and approve unfreezes of the excess; return the request ids (none if no excess)."""
    lock_case(session, case_id)
    excess = excess_in_case(session, case_id, now)
    if excess <= 0:
        return []
    holding = session.scalars(
        select(Control).where(Control.case_id == case_id, Control.action == "freeze",
                              Control.state.in_(("in_force", "partly")), Control.category.in_(CASH_CATEGORIES),
                              (Control.expires_at.is_(None)) | (Control.expires_at >= court_date(now)))
        .order_by(Control.amount, Control.placed_at)
    ).all()
    by_subject: dict[str, dict[str, list[dict[str, Any]]]] = {}
    basis: dict[str, Control] = {}
    for control in holding:
        if excess <= 0:
            break
        take = min(control.amount or Decimal("0"), excess)
        if take <= 0:
            continue
        excess -= take
        basis.setdefault(control.subject_id, control)
        by_subject.setdefault(control.subject_id, {}).setdefault(control.agency_id, []).append({
            "identifier": control.identifier, "category": control.category, "asset_id": control.asset_id,
            "original_reference": control.agency_reference, "amount": str(take),
        })
    case = session.get_one(Case, case_id)
    return [write_system_request(session, case, subject_id, "unfreeze", agencies, basis_kind=basis[subject_id].legal_basis_kind,
                                 basis_number=basis[subject_id].legal_basis_number, reason=f"release of excess: {reason}",
                                 approved_by=SYSTEM.sub, registry=registry, audit=audit, now=now,
                                 source_request_id=basis[subject_id].request_id)
            for subject_id, agencies in by_subject.items()]


def cases_with_excess(session: Session, now: datetime) -> list[str]:
    """Cases whose money frozen and in force is above what is still owed, in one
    statement over every case (the sweep looks at these only, not at every case
    holding a freeze). Releases on their way are not counted here (their amounts
    are in deliveries' JSON lines): a superset, which ``excess_in_case`` narrows."""
    today = court_date(now)
    frozen = (
        select(Control.case_id.label("case_id"), func.sum(Control.amount).label("frozen"))
        .where(Control.state.in_(("in_force", "partly")), Control.category.in_(CASH_CATEGORIES),
               (Control.expires_at.is_(None)) | (Control.expires_at >= today))
        .group_by(Control.case_id).subquery()
    )
    deducted = (
        select(Control.case_id.label("case_id"), func.sum(Control.amount).label("deducted"))
        .where(Control.action == "deduct", Control.state.in_(("deducted", "received")))
        .group_by(Control.case_id).subquery()
    )
    still_owed = Case.amount_owed - func.coalesce(deducted.c.deducted, 0)
    return list(session.scalars(
        select(frozen.c.case_id)
        .join(Case, Case.id == frozen.c.case_id)
        .outerjoin(deducted, deducted.c.case_id == frozen.c.case_id)
        # frozen above max(still owed, 0)
        .where(frozen.c.frozen > 0, frozen.c.frozen > still_owed)
        .order_by(frozen.c.case_id)
    ))


def cases_to_release(session: Session, now: datetime) -> list[str]:
    """The cases the sweep must write to: an excess even after releases on their way."""
    return [case_id for case_id in cases_with_excess(session, now) if excess_in_case(session, case_id, now) > 0]
