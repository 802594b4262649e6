"""The follow-up list (pure): what is listed, when, and in which order."""

from datetime import date, datetime, timedelta, timezone
from decimal import Decimal
from types import SimpleNamespace

from gateway.controls.follow_up import follow_ups

NOW = datetime(2026, 6, 1, 9, 0, tzinfo=timezone.utc)
TODAY = NOW.date()


def row(**kw):
    base = dict(id="c1", case_number="(2026)浙0102执1号", agency_id="bank-a", identifier="6222001", category="deposit",
                action="freeze", state="in_force", amount=Decimal("100.00"), amount_requested=Decimal("100.00"),
                expires_at=TODAY + timedelta(days=300), received=None, asset_id="a1")
    return SimpleNamespace(**{**base, **kw})


def asset(**kw):
    base = dict(id="a9", case_number="(2026)浙0102执1号", agency_id="bank-b", identifier="6222009", category="deposit",
                balance=Decimal("50.00"), found_at=NOW - timedelta(days=16))
    return SimpleNamespace(**{**base, **kw})


def listed(controls=(), found=(), days=30):
    return [(i.kind, i.identifier) for i in follow_ups(controls, found, today=TODAY, now=NOW, warning_days=days,
                                                        uncontrolled_after_days=15)]


def test_a_control_is_listed_within_the_warning_days_and_once_lapsed() -> None:
    assert listed([row()]) == []
    assert listed([row(expires_at=TODAY + timedelta(days=30))]) == [("lapsing", "6222001")]
    assert listed([row()], days=300) == [("lapsing", "6222001")]
    lapsed = follow_ups([row(expires_at=TODAY - timedelta(days=1))], [], today=TODAY, now=NOW, warning_days=30,
                        uncontrolled_after_days=15)
    assert "a new freeze is needed" in lapsed[0].detail


def test_cash_found_and_left_uncontrolled_for_15_days() -> None:
    assert listed(found=[asset(found_at=NOW - timedelta(days=14))]) == []
    assert listed(found=[asset()]) == [("uncontrolled", "6222009")]
    assert listed([row(agency_id="bank-b", identifier="6222009")], [asset()]) == []


def test_partial_freezes_and_deducts_not_confirmed_or_not_matching() -> None:
    assert listed([row(state="partly", amount=Decimal("40.00"))]) == [("partly_covered", "6222001")]
    assert listed([row(action="deduct", state="deducted", expires_at=None)]) == [("deduct_unconfirmed", "6222001")]
    assert listed([row(action="deduct", state="received", received=Decimal("100.00"), expires_at=None)]) == []
    assert listed([row(action="deduct", state="received", received=Decimal("99.00"), expires_at=None)]) == [
        ("deduct_mismatch", "6222001")]


def test_property_a_terminated_cases_requery_found_new_is_listed_first_to_resume() -> None:
    found = {"case_number": "(2026)浙0102执9号", "agency": "bank-a", "identifier": "6222999", "category": "deposit",
             "asset_id": "a7", "balance": "8800.00", "value": None, "round": 1, "found_on": TODAY}
    items = follow_ups([row(expires_at=TODAY + timedelta(days=3))], [], today=TODAY, now=NOW, warning_days=30,
                       uncontrolled_after_days=15, resumable=[found])
    assert [(i.kind, i.identifier) for i in items] == [("resume", "6222999"), ("lapsing", "6222001")]
    assert "balance 8800.00" in items[0].detail and "resumed" in items[0].detail
    assert items[0].view()["due"] == TODAY.isoformat()
