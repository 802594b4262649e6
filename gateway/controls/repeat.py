"""Repeat freezes: a freeze whose accounts held less than asked tries again daily for
the shortfall, up to N days, until covered or cancelled; every attempt audited.

Each attempt is a freeze request of its own, made by the gateway on the approval
the original freeze had (the judge approved freezing the whole amount; the
attempts only carry that decision out). An attempt asks one target account for
the whole shortfall, the accounts taken in turn day by day: the agency freezes
what it can, so the case never holds more than the shortfall, and the cap (what
is still owed, less what is frozen or reserved) is checked first, as at intake.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from audit.store import AuditLog
from gateway.cases.models import Case
from gateway.controls.models import Control, RepeatFreeze
from gateway.controls.rules import ControlRules
from gateway.controls.services import cash_frozen_in_case, deducted_in_case, lock_case, reserved_for_freezes
from gateway.controls.system_requests import SYSTEM, write_system_request
from gateway.db import Database
from gateway.deliveries.models import Asset
from gateway.registry import Registry
from gateway.requests.models import Request
from gateway.requests.states import SETTLED
from gateway.timeutil import as_utc, court_date

DAY = timedelta(days=1)
FINAL = SETTLED  # a request that will not move again


def schedule_row(request_id: str, case_id: str, amount: Decimal, targets: list[str], days: int, now: datetime) -> dict[str, Any]:
    """The repeat_freezes row written with the freeze request at intake."""
    return {"id": request_id, "request_id": request_id, "case_id": case_id, "amount": amount, "targets": targets,
            "state": "active", "attempts": 0, "attempt_request_ids": [], "next_attempt_at": now + DAY,
            "ends_at": now + timedelta(days=days), "last_outcome": None, "updated_at": now}


def covered_by(session: Session, request_ids: list[str]) -> Decimal:
    """Money the freezes of these requests hold or held until a deduct took it."""
    return Decimal(session.scalar(
        select(func.coalesce(func.sum(func.coalesce(Control.amount, 0) + Control.deducted), 0))
        .where(Control.request_id.in_(request_ids), Control.action == "freeze",
               Control.state.in_(("in_force", "partly", "exhausted")))
    ) or 0)  # coalesce makes it 0 already; None only to the type checker


def run_due_repeats(db: Database, registry: Registry, audit: AuditLog, now: datetime, rules: ControlRules) -> list[str]:
    """Attempt every repeat freeze that is due; return the freeze requests made."""
    with db.reading() as session:
        due = list(session.scalars(select(RepeatFreeze.id).where(RepeatFreeze.state == "active",
                                                                 RepeatFreeze.next_attempt_at <= now)))
    made = []
    for repeat_id in due:
        with db.transaction() as session:
            request_id = _attempt(session, repeat_id, registry, audit, now, rules)
        if request_id:
            made.append(request_id)
    return made


def _attempt(session: Session, repeat_id: str, registry: Registry, audit: AuditLog, now: datetime,
             rules: ControlRules) -> str | None:
    repeat = session.get(RepeatFreeze, repeat_id, with_for_update=True)
    if repeat is None or repeat.state != "active" or as_utc(repeat.next_attempt_at) > now:
        return None  # another process's sweep got here first
    original = session.get_one(Request, repeat.request_id)
    chain = [repeat.request_id, *repeat.attempt_request_ids]
    unsettled = session.scalar(select(func.count()).select_from(Request)
                               .where(Request.id.in_(chain), Request.state.not_in(FINAL)))
    if original.state == "rejected":
        _end(session, repeat, original, audit, now, "cancelled", "the freeze was rejected")
        return None
    if unsettled:
        repeat.next_attempt_at = now + DAY  # the freeze or an earlier attempt is still on its way
        return None
    lock_case(session, repeat.case_id)
    shortfall = repeat.amount - covered_by(session, chain)
    if shortfall <= 0:
        _end(session, repeat, original, audit, now, "covered", f"{repeat.amount} frozen in all")
        return None
    if now >= as_utc(repeat.ends_at):
        _end(session, repeat, original, audit, now, "ended", f"out of days; {shortfall} never frozen")
        return None
    case = session.get_one(Case, repeat.case_id)
    room = (case.amount_owed - deducted_in_case(session, case.id) - Decimal(cash_frozen_in_case(session, case.id, court_date(now)))
            - reserved_for_freezes(session, case.id))
    take = min(shortfall, room)
    repeat.next_attempt_at, repeat.updated_at = now + DAY, now
    if take <= 0:
        repeat.last_outcome = f"no room under the amount still owed for the shortfall {shortfall}"
        _audit(session, audit, original, "skipped", repeat, {"shortfall": str(shortfall), "room": str(room)})
        return None
    asset = session.get_one(Asset, repeat.targets[repeat.attempts % len(repeat.targets)])
    until = rules.terms.end(asset.category, court_date(now))
    line = {"identifier": asset.identifier, "category": asset.category, "asset_id": asset.id, "amount": str(take),
            "until": until.isoformat()}
    attempt_id = write_system_request(
        session, case, original.subject_id, "freeze", {asset.agency_id: [line]}, basis_kind=original.legal_basis_kind,
        basis_number=original.legal_basis_number, amount=take, approved_by=original.decided_by or SYSTEM.sub,
        reason=f"repeat freeze {repeat.attempts + 1} of request {original.id}: shortfall {shortfall}",
        registry=registry, audit=audit, now=now, source_request_id=original.id)
    repeat.attempts += 1
    repeat.attempt_request_ids = [*repeat.attempt_request_ids, attempt_id]
    repeat.last_outcome = f"attempt {repeat.attempts}: asked {take} of {asset.agency_id} {asset.identifier}"
    _audit(session, audit, original, "attempted", repeat, {"shortfall": str(shortfall), "asked": str(take),
                                                           "agency": asset.agency_id, "attempt_request": attempt_id})
    return attempt_id


def cancel(session: Session, repeat: RepeatFreeze, original: Request, audit: AuditLog, now: datetime, by: str) -> None:
    _end(session, repeat, original, audit, now, "cancelled", f"cancelled by {by}")


def _end(session: Session, repeat: RepeatFreeze, original: Request, audit: AuditLog, now: datetime, state: str,
         why: str) -> None:
    repeat.state, repeat.last_outcome, repeat.updated_at = state, why, now
    _audit(session, audit, original, state, repeat, {"why": why})
    return None


def _audit(session: Session, audit: AuditLog, original: Request, outcome: str, repeat: RepeatFreeze,
           details: dict[str, Any]) -> None:
    audit.record(session, action="control.repeat_freeze", outcome=outcome, actor=SYSTEM,
                 case_number=original.case.case_number, subject_id_number=original.subject.id_number,
                 request_id=original.id, details={"attempts": repeat.attempts, "amount": str(repeat.amount), **details})


def view(repeat: RepeatFreeze) -> dict[str, Any]:
    return {"state": repeat.state, "amount": str(repeat.amount), "attempts": repeat.attempts,
            "attempt_requests": list(repeat.attempt_request_ids), "next_attempt_at": repeat.next_attempt_at.isoformat(),
            "ends_at": repeat.ends_at.isoformat(), "last_outcome": repeat.last_outcome}
