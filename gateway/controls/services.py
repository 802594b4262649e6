"""The control ledger's reads and writes.

``record_outcomes`` is called by ``record_answer`` in the transaction that stores
an agency's result, so the ledger never disagrees with the results it is built
from. Reads use Core selects: intake runs on a plain Connection.
"""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from typing import Any, Iterable

from sqlalchemy import Connection, func, select, text
from sqlalchemy.orm import Session

from gateway.controls.ledger import LIVE_STATES, ControlInForce, ReportedOutcome, apply, observe
from gateway.controls.models import Control
from gateway.deliveries.models import Delivery
from gateway.deliveries.states import ON_ITS_WAY, DeliveryState
from gateway.requests.models import Request
from gateway.timeutil import court_date
from schemas.vocabulary import CASH_CATEGORIES

_C = Control.__table__.c
PENDING_DELIVERY_STATES = (DeliveryState.HELD, *ON_ITS_WAY)


def as_control(row: Any) -> ControlInForce:
    return ControlInForce(
        id=row.id, agency_id=row.agency_id, identifier=row.identifier, category=row.category, action=row.action,
        state=row.state, amount=row.amount, until=row.expires_at, queue_position=row.queue_position,
        ahead=list(row.ahead or []), agency_reference=row.agency_reference, request_id=row.request_id,
        deducted=row.deducted or Decimal("0"), amount_requested=row.amount_requested, renewals=row.renewals,
        received=row.received,
    )


def controls_in_case(bind: Session | Connection, case_id: str, subject_id: str | None = None, *,
                     states: Iterable[str] = LIVE_STATES) -> list[ControlInForce]:
    """Ledger entries of a case (by default the live ones: in force, partly, queued, watching), oldest first."""
    query = select(Control.__table__).where(_C.case_id == case_id, _C.state.in_(tuple(states)))
    if subject_id is not None:
        query = query.where(_C.subject_id == subject_id)
    return [as_control(row) for row in bind.execute(query.order_by(_C.placed_at, _C.id))]


def by_asset(controls: Iterable[ControlInForce]) -> dict[tuple[str, str], list[ControlInForce]]:
    """Controls per (agency, identifier), oldest first."""
    grouped: dict[tuple[str, str], list[ControlInForce]] = {}
    for control in controls:
        grouped.setdefault((control.agency_id, control.identifier), []).append(control)
    return grouped


def lock_case(bind: Session | Connection, case_id: str) -> None:
    """Serialise money controls of one case: the second of two concurrent freezes waits
    here until the first has committed, then sees its reservation. (SQLite's write
    lock, taken at BEGIN IMMEDIATE, already lets one intake in at a time.)"""
    dialect = bind.get_bind().dialect.name if isinstance(bind, Session) else bind.dialect.name
    if dialect == "postgresql":
        bind.execute(text("SELECT id FROM cases WHERE id = :id FOR UPDATE"), {"id": case_id})


def reserved_for_freezes(bind: Session | Connection, case_id: str) -> Decimal:
    """Cash asked by freezes accepted but not yet answered (held for approval, queued,
    on their way): it counts against the cap until the agency says what it froze. A
    rejected, failed or expired delivery no longer reserves anything."""
    rows = bind.execute(
        select(Delivery.lines).join(Request, Request.id == Delivery.request_id)
        .where(Request.case_id == case_id, Request.action == "freeze",
               Delivery.state.in_(PENDING_DELIVERY_STATES), Delivery.lines.is_not(None))
    )
    return sum(
        (Decimal(line["amount"]) for (lines,) in rows for line in lines or ()
         if line.get("amount") is not None and line.get("category") in CASH_CATEGORIES),
        Decimal("0"),
    )


def _current(session: Session, case_id: str, agency_id: str, identifier: str, reference: str | None) -> Control | None:
    live = session.scalars(
        select(Control).where(Control.case_id == case_id, Control.agency_id == agency_id,
                              Control.identifier == identifier, Control.state.in_(LIVE_STATES + ("exhausted",)),
                              Control.action != "deduct")
        .order_by(Control.placed_at.desc(), Control.id.desc())
        .with_for_update()
    ).all()
    if reference:
        named = [c for c in live if c.agency_reference == reference]
        if named:
            return named[0]
    return next((c for c in live if c.state in LIVE_STATES), None)


def record_outcomes(session: Session, delivery: Delivery, request: Request, outcomes: list[dict[str, Any]],
                    now: datetime) -> list[Control]:
    """Write what an agency reported doing to the ledger (same transaction as the result)."""
    lines = {line["identifier"]: line for line in delivery.lines or ()}
    written: list[Control] = []
    for outcome in outcomes:
        line = lines.get(outcome["identifier"], {})
        row = _current(session, request.case_id, delivery.agency_id, outcome["identifier"], line.get("original_reference"))
        reported = ReportedOutcome(agency_id=delivery.agency_id, action=request.action, request_id=request.id, outcome=outcome)
        effect = apply(as_control(row) if row is not None else None, reported)
        if effect.control is not None:
            if effect.placed:
                row = _new_row(effect.control, delivery, request, line, now)
                session.add(row)
                written.append(row)
            elif row is not None:
                _update_row(row, effect.control, request, now)
                written.append(row)
        if effect.deduct is not None:
            deduct = _new_row(effect.deduct, delivery, request, line, now)
            session.add(deduct)
            written.append(deduct)
    session.flush()
    return written


def observe_assets(session: Session, agency_id: str, subject_id: str, records: list[dict[str, Any]],
                   now: datetime) -> list[Control]:
    """An answer listing assets (an inquiry) may show a waiting control of ours in force
    now (the control ahead was released or lapsed): the ledger follows it."""
    identifiers = {r["identifier"]: r for r in records if (r.get("details") or {}).get("seals") or
                   (r.get("details") or {}).get("freezes")}
    if not identifiers:
        return []
    waiting = session.scalars(
        select(Control).where(Control.subject_id == subject_id, Control.agency_id == agency_id,
                              Control.identifier.in_(list(identifiers)), Control.state == "queued")
        .with_for_update()
    ).all()
    changed = []
    for row in waiting:
        seen = observe(as_control(row), identifiers[row.identifier].get("details") or {})
        if seen is None:
            continue
        row.state, row.queue_position, row.ahead, row.expires_at = seen.state, seen.queue_position, seen.ahead, seen.until
        row.updated_at = now
        changed.append(row)
    session.flush()
    return changed


def _new_row(control: ControlInForce, delivery: Delivery, request: Request, line: dict[str, Any], now: datetime) -> Control:
    return Control(
        case_id=request.case_id, subject_id=request.subject_id, asset_id=line.get("asset_id"),
        agency_id=delivery.agency_id, identifier=control.identifier, category=control.category, action=control.action,
        state=control.state, amount=control.amount, amount_requested=control.amount_requested,
        deducted=control.deducted, legal_basis_kind=request.legal_basis_kind,
        legal_basis_number=request.legal_basis_number, placed_at=now, expires_at=control.until,
        renewals=control.renewals, queue_position=control.queue_position, ahead=control.ahead,
        agency_reference=control.agency_reference, request_id=request.id, delivery_id=delivery.id,
        last_request_id=request.id, updated_at=now,
    )


def _update_row(row: Control, control: ControlInForce, request: Request, now: datetime) -> None:
    row.state, row.amount, row.expires_at, row.renewals = control.state, control.amount, control.until, control.renewals
    row.queue_position, row.ahead, row.agency_reference = control.queue_position, control.ahead, control.agency_reference
    row.deducted, row.last_request_id, row.updated_at = control.deducted, request.id, now
    if control.state not in LIVE_STATES and row.ended_at is None:
        row.ended_at = now


def deducted_in_case(bind: Session | Connection, case_id: str) -> Decimal:
    """Money deducts took for the case (as the agencies reported it transferred)."""
    return Decimal(bind.execute(
        select(func.coalesce(func.sum(_C.amount), 0))
        .where(_C.case_id == case_id, _C.action == "deduct", _C.state.in_(("deducted", "received")))
    ).scalar_one())


def cash_frozen_in_case(bind: Session | Connection, case_id: str, today: date) -> Decimal:
    """Money frozen and in force for a case, across agencies (lapsed freezes hold nothing)."""
    return bind.execute(
        select(func.coalesce(func.sum(_C.amount), 0)).where(
            _C.case_id == case_id, _C.state.in_(("in_force", "partly")), _C.category.in_(CASH_CATEGORIES),
            (_C.expires_at.is_(None)) | (_C.expires_at >= today))
    ).scalar_one()


def ledger_view(row: Any, today: date) -> dict[str, Any]:
    """One ledger row as the API shows it (LedgerEntrySchema)."""
    control = as_control(row)
    view = control.view(today)
    view.update({
        "agency": row.agency_id, "identifier": row.identifier, "category": row.category, "asset_id": row.asset_id,
        "subject_id": row.subject_id, "placed_at": row.placed_at, "received": row.received,
        "legal_basis": ({"kind": row.legal_basis_kind, "number": row.legal_basis_number}
                        if row.legal_basis_number else None),
        "days_left": (row.expires_at - today).days if row.expires_at else None,
    })
    if row.action == "deduct":
        view["state"] = row.state
    return view


def case_ledger(bind: Session | Connection, case_id: str, today: date) -> list[dict[str, Any]]:
    """Controls in force and waiting (with expiry), and deducts, of a case."""
    rows = bind.execute(
        select(Control.__table__).where(_C.case_id == case_id, _C.state.in_(LIVE_STATES + ("deducted", "received")))
        .order_by(_C.expires_at.is_(None), _C.expires_at, _C.placed_at)
    )
    return [ledger_view(row, today) for row in rows]


def due_rows(bind: Session | Connection, *, court_code: str | None, case_id: str | None) -> tuple[list[Any], list[Any]]:
    """Ledger rows and cash assets found, with their case number, for the follow-up lists."""
    from gateway.cases.models import Case
    from gateway.deliveries.models import Asset
    from gateway.timeutil import as_utc

    controls = select(Control.__table__, Case.case_number).join(Case, Case.id == _C.case_id).where(
        _C.state.in_(LIVE_STATES + ("deducted", "received")))
    cash = (
        select(Asset.id, Asset.agency_id, Asset.identifier, Asset.category, Asset.balance, Asset.found_at,
               Case.case_number)
        .join(Delivery, Delivery.id == Asset.delivery_id).join(Request, Request.id == Delivery.request_id)
        .join(Case, Case.id == Request.case_id)
        .where(Request.action == "inquiry", Asset.category.in_(CASH_CATEGORIES))
        .order_by(Asset.found_at.desc())
    )
    for condition in ([Case.court_code == court_code] if court_code else []) + ([Case.id == case_id] if case_id else []):
        controls, cash = controls.where(condition), cash.where(condition)
    latest: dict[tuple[str, str, str], Any] = {}
    for row in bind.execute(cash):
        latest.setdefault((row.case_number, row.agency_id, row.identifier), row)
    found = [_AssetSeen(r.id, r.agency_id, r.identifier, r.category, r.balance, as_utc(r.found_at), r.case_number)
             for r in latest.values() if r.balance and r.balance > 0]
    return list(bind.execute(controls)), found


class _AssetSeen:
    __slots__ = ("id", "agency_id", "identifier", "category", "balance", "found_at", "case_number")

    def __init__(self, *values: Any) -> None:
        for name, value in zip(self.__slots__, values, strict=True):
            setattr(self, name, value)


def due_list(bind: Session | Connection, rules: Any, now: datetime, *, court_code: str | None, case_id: str | None,
             days: int | None = None) -> dict[str, Any]:
    """The follow-up list of a court or a case (the API's and ``gateway controls due``'s).
    ``rules`` is the app's ControlRules; ``days`` overrides its warning days."""
    from gateway.controls.follow_up import follow_ups
    from gateway.termination.services import resumable_rows  # termination builds on controls, not the other way

    controls, found = due_rows(bind, court_code=court_code, case_id=case_id)
    items = follow_ups(controls, found, today=court_date(now), now=now,
                       warning_days=rules.warning_days if days is None else days,
                       uncontrolled_after_days=rules.uncontrolled_after_days,
                       resumable=resumable_rows(bind, court_code=court_code, case_id=case_id))
    return {"court": court_code, "as_of": court_date(now).isoformat(), "items": [i.view() for i in items]}
