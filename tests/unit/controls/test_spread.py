"""How a freeze's amount is spread over the accounts named (pure part of intake)."""

from dataclasses import replace
from datetime import datetime, timezone
from decimal import Decimal
from types import SimpleNamespace

from gateway.controls.ledger import ControlInForce
from gateway.controls.rules import DEFAULT_RULES
from gateway.requests.control_lines import _lines

NOW = datetime(2026, 6, 1, tzinfo=timezone.utc)


def account(asset_id: str, balance: str) -> SimpleNamespace:
    return SimpleNamespace(id=asset_id, agency_id="bank-a", identifier=f"6222{asset_id}", category="deposit",
                           balance=Decimal(balance), value=None, details={"account_kind": "01"})


def frozen_by_us(asset: SimpleNamespace, amount: str) -> ControlInForce:
    return ControlInForce(agency_id=asset.agency_id, identifier=asset.identifier, category="deposit", action="freeze",
                          state="in_force", amount=Decimal(amount), until=None, agency_reference="F1")


def amounts(lines: dict) -> dict[str, str]:
    return {asset_id: line["amount"] for asset_id, line in lines.items()}


def test_largest_balance_first_until_covered() -> None:
    big, small = account("1", "800.00"), account("2", "300.00")
    lines = _lines("freeze", [small, big], {"amount": Decimal("1000.00")}, {}, NOW, DEFAULT_RULES)
    assert amounts(lines) == {"1": "800.00", "2": "200.00"}


def test_what_this_case_froze_already_is_not_asked_again() -> None:
    big, small = account("1", "800.00"), account("2", "300.00")
    in_force = {(big.agency_id, big.identifier): [frozen_by_us(big, "700.00")]}
    lines = _lines("freeze", [small, big], {"amount": Decimal("350.00")}, in_force, NOW, DEFAULT_RULES)
    assert amounts(lines) == {"2": "300.00", "1": "50.00"}  # 100 left on the big one, 300 on the small


def test_the_protected_sum_stays_in_the_smallest_accounts() -> None:
    rules = replace(DEFAULT_RULES, protected_monthly_sum=Decimal("250.00"))
    big, small = account("1", "800.00"), account("2", "300.00")
    lines = _lines("freeze", [small, big], {"amount": Decimal("5000.00")}, {}, NOW, rules)
    assert amounts(lines) == {"1": "800.00", "2": "50.00"}
