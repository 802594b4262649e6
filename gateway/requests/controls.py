"""Turning an officer's control request into per-agency asset lines (at intake).

The officer names assets from the asset report (``targets``); the gateway sends
each line to the agency that reported the asset (a valuation goes to whichever
agency values that category), as the agency names it, with the term the law
allows and, for freezes and deducts, the amount spread over the accounts largest
balance first until it is covered. Nothing here talks to an agency.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import Connection, select
from sqlalchemy.orm import Session

from gateway.cases.models import Case
from gateway.cases.services import DebtorRef
from gateway.controls.ledger import IN_FORCE, cash_frozen
from gateway.controls.services import controls_in_case
from gateway.controls.terms import term_end
from gateway.deliveries.models import Asset
from gateway.errors import RuleViolation
from gateway.registry import Registry, Route
from schemas.vocabulary import CASH_CATEGORIES

MONEY_ACTIONS = ("freeze", "deduct")
TERM_ACTIONS = ("freeze", "seal", "renew")
ENDING_ACTIONS = ("renew", "unfreeze", "release")  # act on a control already in force


@dataclass(frozen=True)
class ControlRoute:
    route: Route
    lines: list[dict[str, Any]]


def resolve_targets(bind: Session | Connection, payload: dict[str, Any], debtor: DebtorRef, registry: Registry,
                    now: datetime) -> list[ControlRoute]:
    """Routes with asset lines for a targeted action. Raises RuleViolation naming the target."""
    action = payload["action"]
    targets = list(payload.get("targets") or [])
    if not targets:
        raise RuleViolation(f"a {action} names the assets it acts on", fields={"targets": [f"required for {action}: asset ids from the asset report"]})
    # Core rows (not ORM objects): intake runs on a plain Connection.
    rows = {a.id: a for a in bind.execute(select(*Asset.__table__.c).where(Asset.id.in_(targets)))}
    problems: dict[str, list[str]] = {}
    assets: list[Any] = []
    for i, asset_id in enumerate(targets):
        asset = rows.get(asset_id)
        if asset is None or asset.subject_id != debtor.subject_id:
            problems[f"targets[{i}]"] = [f"{asset_id!r} is not an asset found for this debtor"]
        elif action != "valuation" and not registry.accepts(asset.agency_id, action, asset.category):
            problems[f"targets[{i}]"] = [f"agency {asset.agency_id!r} does not accept {action} on {asset.category}"]
        else:
            assets.append(asset)
    if problems:
        raise RuleViolation(f"the {action} names assets it cannot act on", fields=problems)
    in_force = controls_in_case(bind, debtor.case_id, debtor.subject_id)
    lines = _lines(action, assets, payload, in_force, now)
    if action in MONEY_ACTIONS and any(a.category in CASH_CATEGORIES for a in assets):
        _check_cap(bind, payload, debtor, in_force)
    return _group(action, assets, lines, registry)


def _lines(action: str, assets: list[Any], payload: dict[str, Any], in_force: dict, now: datetime) -> dict[str, dict[str, Any]]:
    lines: dict[str, dict[str, Any]] = {}
    remaining = payload.get("amount")
    ordered = sorted(assets, key=lambda a: a.balance or Decimal("0"), reverse=True) if action in MONEY_ACTIONS else assets
    for asset in ordered:
        line: dict[str, Any] = {"identifier": asset.identifier, "category": asset.category}
        control = in_force.get((asset.agency_id, asset.identifier))
        if action in ENDING_ACTIONS or action == "deduct":
            if control is None or control.outcome not in IN_FORCE:
                raise RuleViolation(f"no control in force on {asset.identifier} to {action}",
                                    fields={"targets": [f"{asset.id}: nothing in force to {action}"]})
            line["original_reference"] = control.agency_reference
        if action in MONEY_ACTIONS:
            if remaining <= 0:
                break  # covered: the rest are not touched
            if action == "deduct":
                held = control.amount or Decimal("0")
            elif asset.category in CASH_CATEGORIES:
                held = asset.balance or Decimal("0")
            else:  # equity and other property: up to its recorded value, or the whole amount asked
                held = asset.value if asset.value is not None else remaining
            take = min(held, remaining)
            if take <= 0:
                continue
            line["amount"] = str(take)
            remaining -= take
        if action in TERM_ACTIONS:
            line["until"] = term_end(asset.category, now.date()).isoformat()
        lines[asset.id] = line
    if action in MONEY_ACTIONS and not lines:
        raise RuleViolation(f"the accounts named hold nothing to {action}", fields={"targets": ["no balance to act on"]})
    return lines


def _check_cap(bind: Session | Connection, payload: dict[str, Any], debtor: DebtorRef, in_force: dict) -> None:
    """No over-freezing: money frozen for a case never exceeds the amount owed."""
    if payload["action"] != "freeze":
        return
    owed = bind.scalar(select(Case.amount_owed).where(Case.id == debtor.case_id)) or Decimal("0")
    frozen = cash_frozen(in_force, CASH_CATEGORIES)
    room = owed - frozen
    if payload["amount"] > room:
        raise RuleViolation(
            f"freezing {payload['amount']} would exceed the amount owed ({owed}, {frozen} already frozen)",
            fields={"amount": [f"at most {max(room, Decimal('0'))} may still be frozen for this case"]},
        )


def _group(action: str, assets: list[Any], lines: dict[str, dict[str, Any]], registry: Registry) -> list[ControlRoute]:
    by_agency: dict[str, list[dict[str, Any]]] = {}
    categories: dict[str, list[str]] = {}
    for asset in assets:
        if asset.id not in lines:
            continue
        if action == "valuation":
            routes = registry.route(action, [asset.category])
            if not routes:
                raise RuleViolation(f"no agency values {asset.category}", fields={"targets": [f"{asset.id}: no valuation for {asset.category}"]})
            agency_id = routes[0].agency.id
        else:
            agency_id = asset.agency_id
        by_agency.setdefault(agency_id, []).append(lines[asset.id])
        if asset.category not in categories.setdefault(agency_id, []):
            categories[agency_id].append(asset.category)
    return [
        ControlRoute(Route(registry.get(agency_id), tuple(categories[agency_id])), agency_lines)
        for agency_id, agency_lines in sorted(by_agency.items())
    ]
