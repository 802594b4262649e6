"""The controls in force follow what agencies reported, in order."""

from datetime import date
from decimal import Decimal

from gateway.controls.ledger import ReportedOutcome, cash_frozen, fold
from gateway.controls.terms import term_end
from schemas.vocabulary import CASH_CATEGORIES


def outcome(action: str, identifier: str, kind: str, amount: str | None = None, agency: str = "bank-a", **extra) -> ReportedOutcome:
    body = {"category": extra.pop("category", "deposit"), "identifier": identifier, "outcome": kind,
            "amount_controlled": amount, **extra}
    return ReportedOutcome(agency_id=agency, action=action, request_id=f"r-{action}-{identifier}", outcome=body)


def test_freeze_then_release_leaves_nothing() -> None:
    ledger = fold([outcome("freeze", "6222001", "controlled", "100.00", agency_reference="F1"),
                   outcome("unfreeze", "6222001", "released")])
    assert ledger == {}


def test_partial_freeze_counts_what_the_bank_actually_froze() -> None:
    ledger = fold([outcome("freeze", "6222001", "partly_controlled", "40.00"),
                   outcome("freeze", "6222002", "controlled", "60.00", agency="bank-b")])
    assert cash_frozen(ledger, CASH_CATEGORIES) == Decimal("100.00")
    assert ledger[("bank-a", "6222001")].outcome == "partly_controlled"


def test_queued_and_refused_freezes_hold_no_money() -> None:
    ledger = fold([outcome("freeze", "6222001", "queued", None, queue_position=2, ahead=["330106"]),
                   outcome("freeze", "6222002", "not_controlled", None, reason="account closed")])
    assert cash_frozen(ledger, CASH_CATEGORIES) == Decimal("0")
    assert ledger[("bank-a", "6222001")].queue_position == 2
    assert ("bank-a", "6222002") not in ledger


def test_renewal_keeps_the_original_action_reference_and_amount() -> None:
    ledger = fold([outcome("freeze", "6222001", "controlled", "100.00", agency_reference="F1", until="2027-01-01"),
                   outcome("renew", "6222001", "controlled", None, until="2028-01-01")])
    control = ledger[("bank-a", "6222001")]
    assert (control.action, control.amount, control.agency_reference, control.until) == (
        "freeze", Decimal("100.00"), "F1", date(2028, 1, 1))


def test_deduct_lowers_the_frozen_amount_and_is_remembered() -> None:
    ledger = fold([outcome("freeze", "6222001", "controlled", "100.00"),
                   outcome("deduct", "6222001", "deducted", "30.00")])
    control = ledger[("bank-a", "6222001")]
    assert (control.amount, control.deducted) == (Decimal("70.00"), Decimal("30.00"))
    assert cash_frozen(ledger, CASH_CATEGORIES) == Decimal("70.00")


def test_a_seal_on_real_estate_is_not_cash() -> None:
    ledger = fold([outcome("seal", "3301", "controlled", None, category="real_estate", agency="land")])
    assert cash_frozen(ledger, CASH_CATEGORIES) == Decimal("0")
    assert ledger[("land", "3301")].action == "seal"


def test_terms_follow_the_law() -> None:
    start = date(2026, 1, 1)
    assert term_end("deposit", start) == date(2027, 1, 1)
    assert term_end("vehicle", start) == date(2028, 1, 1)
    assert term_end("real_estate", start) == date(2029, 1, 1)
    assert term_end("equity", start) == term_end("real_estate", start)
    assert term_end("deposit", date(2028, 2, 29)) == date(2029, 2, 28)
