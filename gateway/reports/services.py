"""Build the asset report of one subject in one case from stored agency answers."""

from __future__ import annotations

from datetime import date
from decimal import ROUND_HALF_UP, Decimal
from typing import Any, Sequence

from sqlalchemy import select
from sqlalchemy.orm import Session

from gateway.auth.tokens import Principal
from gateway.bankruptcy.services import bankruptcies_of, flag_view
from gateway.cases.models import Case, Party, Subject
from gateway.cases.services import find_case
from gateway.controls.ledger import ControlInForce, cash_frozen
from gateway.controls.rules import DEFAULT_RULES, ControlRules
from gateway.controls.services import by_asset, controls_in_case
from gateway.deliveries.models import Asset, Delivery
from gateway.errors import PurposeDenied
from gateway.requests.models import Request
from gateway.deliveries.states import DeliveryState
from gateway.requests.states import api_delivery_state
from gateway.timeutil import as_utc, court_today, utc_now
from schemas.vocabulary import CASH_CATEGORIES


def find_debtor(case: Case, subject_ref: str) -> Party:
    """A debtor party of the case, named by gateway subject id or by identity number."""
    for party in case.parties:
        if party.role == "debtor" and subject_ref in (party.subject.id, party.subject.id_number):
            return party
    raise PurposeDenied(f"the subject is not a debtor party of case {case.case_number}")


def cash_ratio(cash: Decimal, owed: Decimal) -> str:
    if owed <= 0:
        return "0.0000"
    return str((cash / owed).quantize(Decimal("0.0001"), rounding=ROUND_HALF_UP))


def build_report(session: Session, case_number: str, subject_ref: str, principal: Principal,
                 today: date | None = None, rules: ControlRules = DEFAULT_RULES) -> tuple[dict[str, Any], Subject]:
    """The report; cash found counts only what may be frozen (exempt accounts apart)."""
    case = find_case(session, case_number, principal)
    debtor = find_debtor(case, subject_ref)
    subject = debtor.subject
    deliveries = session.scalars(
        select(Delivery).join(Request)
        .where(Request.case_id == case.id, Request.subject_id == subject.id, Request.action == "inquiry")
        .order_by(Delivery.created_at.desc())
    ).all()
    answered_from, latest_by_agency = _standing_answers(deliveries)
    assets, via = _assets_answered(session, answered_from)
    exempt = {a.id: rules.exempt_kind(a.category, a.details) for a in assets}
    cash = [a for a in assets if a.category in CASH_CATEGORIES]
    cash_found = sum((a.balance or Decimal("0") for a in cash if not exempt[a.id]), Decimal("0"))
    cash_exempt = sum((a.balance or Decimal("0") for a in cash if exempt[a.id]), Decimal("0"))
    today = today or court_today()
    controls = controls_in_case(session, case.id, subject.id)
    ledger = by_asset(controls)
    valuations = _valuations(session, case.id, subject.id)
    bankruptcy = bankruptcies_of(session, [subject.id]).get(subject.id)
    answered_times = [as_utc(d.answered_at) for d in deliveries if d.answered_at]
    report = {
        "case_number": case.case_number,
        "subject": {"id": subject.id, "kind": subject.kind, "name": debtor.name, "id_number": subject.id_number},
        "amount_owed": case.amount_owed,
        "as_of": max(answered_times) if answered_times else utc_now(),
        "assets": [_asset_view(a, via[a.id], exempt[a.id] is not None, valuations, ledger, today) for a in assets],
        "cash_found": cash_found,
        "cash_exempt": cash_exempt,
        "cash_frozen": cash_frozen(controls, CASH_CATEGORIES, today),
        "bankruptcy": flag_view(bankruptcy) if bankruptcy else None,
        "cash_recoverable_ratio": cash_ratio(cash_found, case.amount_owed),
        "gaps": [
            {"agency": d.agency_id, "state": api_delivery_state(d.state), "categories": d.categories, "error": d.last_error}
            for d in latest_by_agency.values()
            if d.state != DeliveryState.ANSWERED
        ],
    }
    return report, subject


def _standing_answers(deliveries: Sequence[Delivery]) -> tuple[dict[tuple[str, str], Delivery], dict[str, Delivery]]:
    """The newest answered delivery per (agency, category), whose answer stands (older
    ones are history), and the newest delivery per agency (for the report's gaps).
    ``deliveries`` come newest first."""
    answered_from: dict[tuple[str, str], Delivery] = {}
    latest_by_agency: dict[str, Delivery] = {}
    for d in deliveries:
        latest_by_agency.setdefault(d.agency_id, d)
        if d.state == DeliveryState.ANSWERED:
            for category in d.categories:
                answered_from.setdefault((d.agency_id, category), d)
    return answered_from, latest_by_agency


def _assets_answered(session: Session, answered_from: dict[tuple[str, str], Delivery]
                     ) -> tuple[list[Asset], dict[str, Delivery]]:
    """The assets of the standing answers, and the delivery each came through. A reused
    answer's assets are those of the delivery it reuses (another case's)."""
    assets: list[Asset] = []
    via: dict[str, Delivery] = {}
    if not answered_from:
        return assets, via
    sources = {d.reused_from or d.id for d in answered_from.values()}
    rows = session.scalars(
        select(Asset).where(Asset.delivery_id.in_(sources)).order_by(Asset.category, Asset.identifier)
    ).all()
    for a in rows:
        source = answered_from.get((a.agency_id, a.category))
        if source is not None and (source.reused_from or source.id) == a.delivery_id:
            assets.append(a)
            via[a.id] = source
    return assets, via


def _asset_view(a: Asset, via: Delivery, exempt: bool, valuations: dict[tuple[str, str], Decimal],
                ledger: dict[tuple[str, str], list[ControlInForce]], today: date) -> dict[str, Any]:
    """One asset as the report shows it, with the controls on it and whether it was reused."""
    return {
        "id": a.id, "category": a.category, "agency": a.agency_id, "identifier": a.identifier,
        "description": a.description, "balance": a.balance,
        "value": a.value if a.value is not None else valuations.get((a.category, a.identifier)),
        "encumbrances": a.encumbrances, "exempt": exempt,
        "controls": [c.view(today) for c in ledger.get((a.agency_id, a.identifier), [])],
        "details": a.details, "found_at": a.found_at,
        "reused": via.reused_from is not None,
        **({"age_seconds": via.reused_age_seconds} if via.reused_from else {}),
    }


def _valuations(session: Session, case_id: str, subject_id: str) -> dict[tuple[str, str], Decimal]:
    """Reference values an agency gave for assets (valuation requests), newest first wins."""
    rows = session.execute(
        select(Asset.category, Asset.identifier, Asset.value).join(Delivery, Delivery.id == Asset.delivery_id)
        .join(Request, Request.id == Delivery.request_id)
        .where(Request.case_id == case_id, Request.subject_id == subject_id, Request.action == "valuation",
               Asset.value.is_not(None))
        .order_by(Asset.found_at.desc())
    )
    values: dict[tuple[str, str], Decimal] = {}
    for row in rows:
        values.setdefault((row.category, row.identifier), row.value)
    return values
