"""The pure logic of the officers' and judges' pages and the console's catalogue."""

from __future__ import annotations

from decimal import Decimal

import pytest
from flask import Flask

from gateway.casework import pages
from gateway.people.language import court_time, money, translate
from gateway.people.messages import MESSAGES, vocabulary


def test_the_cap_is_the_amount_owed_less_deducted_frozen_and_reserved_never_below_zero():
    assert pages.freeze_cap(Decimal("100000"), Decimal("1000"), Decimal("20000"), Decimal("5000")) == Decimal("74000")
    assert pages.freeze_cap(Decimal("100"), Decimal("0"), Decimal("150"), Decimal("0")) == Decimal("0")


@pytest.mark.parametrize(("asset", "freezable"), [
    ({"category": "deposit", "exempt": False, "balance": Decimal("5"), "agency": "bank-a"}, True),
    ({"category": "deposit", "exempt": True, "balance": Decimal("5"), "agency": "bank-a"}, False),
    ({"category": "deposit", "exempt": False, "balance": Decimal("0"), "agency": "bank-a"}, False),
    ({"category": "real_estate", "exempt": False, "balance": None, "agency": "bank-a"}, False),
    ({"category": "deposit", "exempt": False, "balance": Decimal("5"), "agency": "psb"}, False),
])
def test_only_money_not_exempt_with_a_balance_at_an_agency_that_freezes_may_be_ticked(asset, freezable):
    assert pages.freezable(asset, lambda agency, action, category: agency.startswith("bank")) is freezable


def test_the_ratio_reads_as_a_percentage():
    assert pages.ratio_percent("0.8334") == "83.34%" and pages.ratio_percent("1.2000") == "120.00%"


def test_a_form_without_accounts_amount_or_document_names_the_field():
    with pytest.raises(pages.FormProblem) as nothing:
        pages.read_freeze_form({"amount": "5"}, [], None)
    assert nothing.value.field == "targets"
    with pytest.raises(pages.FormProblem) as amount:
        pages.read_freeze_form({"amount": "-1"}, ["a"], None)
    assert amount.value.field == "amount"
    with pytest.raises(pages.FormProblem) as document:
        pages.read_freeze_form({"amount": "1,000.00"}, ["a"], None)
    assert document.value.field == "document"


def test_every_english_message_has_a_chinese_one_and_chinese_is_the_default():
    assert set(MESSAGES["en"]) <= set(MESSAGES["zh"])
    with Flask(__name__).test_request_context("/console/cases"):
        assert translate("progress", answered=6, agencies=8) == "6 / 8 家机构已答复"
        assert translate("progress", "en", answered=6, agencies=8) == "6 of 8 agencies answered"
        assert translate("state.completed", "en") == "已完成"  # no English entry: the Chinese one
        assert translate("no.such.message", "en") == "no.such.message"  # none at all: the key shows
    assert vocabulary("state", "completed", "en") == "completed" and vocabulary("state", "completed", "zh") == "已完成"


def test_times_are_beijing_wall_clock_and_money_has_separators():
    assert court_time("2026-01-31T17:30:00Z") == "2026-02-01 01:30"
    assert money(Decimal("150000")) == "150,000.00" and money(None) == "—"
