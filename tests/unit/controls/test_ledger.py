"""The controls in force follow what agencies reported, in order."""

from datetime import date
from decimal import Decimal

import pytest

from gateway.controls.ledger import ControlInForce, ReportedOutcome, apply, cash_frozen, fold, observe
from gateway.controls.terms import Terms, add_months, term_end
from gateway.errors import ConfigError
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



def test_a_partial_release_leaves_the_rest_frozen() -> None:
    ledger = fold([outcome("freeze", "6222001", "controlled", "100.00", agency_reference="F1"),
                   outcome("unfreeze", "6222001", "released", "40.00")])
    assert ledger[("bank-a", "6222001")].amount == Decimal("60.00")


def test_a_deduct_is_a_transfer_of_its_own_and_taking_everything_ends_the_freeze() -> None:
    placed = apply(None, outcome("freeze", "6222001", "controlled", "100.00")).control
    effect = apply(placed, outcome("deduct", "6222001", "deducted", "100.00", agency_reference="KH1"))
    assert (effect.control.state, effect.control.amount, effect.control.deducted) == ("exhausted", Decimal("0"), Decimal("100.00"))
    assert (effect.deduct.action, effect.deduct.state, effect.deduct.amount) == ("deduct", "deducted", Decimal("100.00"))


def test_a_lapsed_freeze_holds_no_money() -> None:
    control = apply(None, outcome("freeze", "6222001", "controlled", "100.00", until="2027-01-01")).control
    assert cash_frozen([control], CASH_CATEGORIES, date(2027, 1, 1)) == Decimal("100.00")
    assert cash_frozen([control], CASH_CATEGORIES, date(2027, 1, 2)) == Decimal("0")
    assert control.view(date(2027, 1, 2))["state"] == "lapsed"


def _waiting() -> ControlInForce:
    return ControlInForce(agency_id="land", identifier="3301", category="real_estate", action="seal", state="queued",
                          amount=None, until=date(2029, 1, 1), queue_position=2, ahead=["court X ruling 1"],
                          agency_reference="CF2")


def test_an_inquiry_showing_our_waiting_seal_in_force_moves_it_in_force() -> None:
    seals = [{"court": "330102", "ruling": "r2", "in_force": True, "place": 1, "reference": "CF2", "until": "2029-01-01"}]
    seen = observe(_waiting(), {"seals": seals})
    assert (seen.state, seen.queue_position, seen.ahead) == ("in_force", None, [])


def test_an_inquiry_showing_our_seal_still_waiting_updates_its_place() -> None:
    seals = [{"court": "court Y", "ruling": "r9", "in_force": True, "place": 1, "reference": "CF9"},
             {"court": "330102", "ruling": "r2", "in_force": False, "place": 2, "reference": "CF2"}]
    seen = observe(_waiting(), {"seals": seals})
    assert (seen.state, seen.ahead) == ("queued", ["court Y r9"])
    assert observe(_waiting(), {"seals": [{"reference": "other", "in_force": True}]}) is None


def test_settings_may_shorten_terms_but_never_lengthen_them() -> None:
    terms = Terms.from_settings({"deposit": 6})
    assert terms.end("deposit", date(2026, 8, 31)) == date(2027, 2, 28)
    assert terms.end("vehicle", date(2026, 1, 1)) == date(2028, 1, 1)  # unchanged: the law's two years
    # A renewal runs on from the expiry, never past the law's maximum from the day it is made.
    assert terms.renewed_end("deposit", date(2026, 7, 1), date(2026, 1, 1)) == date(2027, 1, 1)
    assert Terms.from_settings({}).renewed_end("deposit", date(2026, 7, 1), date(2026, 1, 1)) == date(2027, 1, 1)
    with pytest.raises(ConfigError, match="controls.term_months.deposit = 13: must be 1..12"):
        Terms.from_settings({"deposit": 13})
    assert add_months(date(2026, 1, 31), 1) == date(2026, 2, 28)
