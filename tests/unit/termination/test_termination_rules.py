"""The termination rules (pure): the filing period, the network inquiries, the schedule, new assets."""

from datetime import date, datetime, timezone

import pytest

from gateway.errors import ConfigError
from gateway.settings import load_settings
from gateway.termination import rules
from gateway.termination.rules import Attempt, Debtor

AT = datetime(2026, 3, 1, 2, 0, tzinfo=timezone.utc)
ZHANG = Debtor("s1", "张三 (3301**********1157)")


def test_more_than_three_months_counts_from_the_day_after_filing() -> None:
    # Filed 10 Jan: the three months end on 10 Apr (Civil Code arts. 201, 202); "more than" is 11 Apr.
    assert not rules.filing_condition(date(2026, 1, 10), date(2026, 4, 10), 3).met
    met = rules.filing_condition(date(2026, 1, 10), date(2026, 4, 11), 3)
    assert met.met and met.gaps == [] and met.evidence["earliest_on"] == "2026-04-11"
    short = rules.filing_condition(date(2025, 11, 30), date(2026, 2, 27), 3)
    assert short.evidence["earliest_on"] == "2026-03-01"  # 30 Nov + 3 months = 28 Feb (no 30 Feb), then a day
    assert short.gaps == ["the case was filed on 2025-11-30: termination is possible from 2026-03-01 (2 days on)"]


def attempt(agency: str, categories: tuple[str, ...], state: str = "answered", request: str = "r1", **kw) -> Attempt:
    answered_at = AT if state == "answered" else None
    return Attempt("s1", agency, categories, state, request, f"d-{agency}-{request}", answered_at, **kw)


def test_every_agency_serving_each_category_must_have_answered_for_every_debtor() -> None:
    serving = {"deposit": ["bank-a", "bank-b"], "vehicle": ["psb"]}
    attempts = [attempt("bank-a", ("deposit",)), attempt("bank-b", ("deposit",), state="expired", request="r2"),
                attempt("bank-b", ("deposit",), state="failed", request="r1")]
    condition = rules.inquiry_condition([ZHANG], ["deposit", "vehicle"], serving, attempts)
    assert not condition.met
    assert condition.gaps == [f"{ZHANG.label}: deposit at bank-b: asked in request r2, not answered (expired)",
                              f"{ZHANG.label}: vehicle at psb: never asked"]
    (deposit, vehicle) = condition.evidence[0]["categories"]
    assert deposit["agencies"][0] == {"agency": "bank-a", "answered": True, "request_id": "r1",
                                      "delivery_id": "d-bank-a-r1", "answered_at": AT.isoformat(), "reused_from": None}
    # A newer answer fills the gap; a reused answer (another case's, within the window) counts and says so.
    attempts = [attempt("bank-b", ("deposit",), request="r3"),
                attempt("psb", ("vehicle", "identity"), reused_from="d9"), *attempts]
    condition = rules.inquiry_condition([ZHANG], ["deposit", "vehicle"], serving, attempts)
    assert condition.met and condition.gaps == []
    assert condition.evidence[0]["categories"][1]["agencies"][0]["reused_from"] == "d9"


def test_an_answer_for_another_category_or_debtor_does_not_count() -> None:
    other = Attempt("s2", "bank-a", ("deposit",), "answered", "r1", "d1", AT)
    condition = rules.inquiry_condition([ZHANG], ["deposit"], {"deposit": ["bank-a"]},
                                        [other, attempt("bank-a", ("wealth_product",))])
    assert condition.gaps == [f"{ZHANG.label}: deposit at bank-a: never asked"]


def test_a_category_no_agency_serves_cannot_be_proved_and_no_debtor_is_a_gap() -> None:
    condition = rules.inquiry_condition([ZHANG], ["securities"], {"securities": []}, [])
    assert not condition.met and "no agency of the registry answers an inquiry for 'securities'" in condition.gaps[0]
    nobody = rules.inquiry_condition([], ["deposit"], {"deposit": ["bank-a"]}, [])
    assert nobody.gaps == ["the case has no debtor party"]


def test_the_schedule_is_every_six_months_for_five_years() -> None:
    until = rules.shift_months(AT, 60)
    due = [rules.next_due(AT, n, 6, until) for n in range(1, 12)]
    assert due[0] == datetime(2026, 9, 1, 2, 0, tzinfo=timezone.utc)
    assert due[9] == until == datetime(2031, 3, 1, 2, 0, tzinfo=timezone.utc)  # the tenth, at five years, is the last
    assert due[10] is None
    leap = datetime(2028, 2, 29, 12, 0, tzinfo=timezone.utc)
    assert rules.round_due(leap, 1, 6) == datetime(2028, 8, 29, 12, 0, tzinfo=timezone.utc)
    assert rules.round_due(leap, 2, 6) == datetime(2029, 2, 28, 12, 0, tzinfo=timezone.utc)


def test_rounds_missed_while_the_gateway_was_down_are_skipped_not_made_back_to_back() -> None:
    until = rules.shift_months(AT, 60)
    assert rules.following_round(AT, 1, 6, until, rules.round_due(AT, 1, 6)) == (2, rules.round_due(AT, 2, 6))
    late = rules.round_due(AT, 3, 6) + (rules.round_due(AT, 4, 6) - rules.round_due(AT, 3, 6)) / 2
    assert rules.following_round(AT, 1, 6, until, late) == (4, rules.round_due(AT, 4, 6))
    assert rules.following_round(AT, 9, 6, until, rules.round_due(AT, 9, 6)) == (10, until)
    assert rules.following_round(AT, 10, 6, until, until) == (11, None)


def test_new_assets_are_those_not_known_at_termination_by_debtor_agency_and_identifier() -> None:
    known = [{"subject_id": "s1", "agency": "bank-a", "identifier": "6222001"}]
    found = [{"subject_id": "s1", "agency": "bank-a", "identifier": "6222001", "category": "deposit"},
             {"subject_id": "s1", "agency": "bank-b", "identifier": "6222001", "category": "deposit"},
             {"subject_id": "s1", "agency": "bank-b", "identifier": "6222001", "category": "deposit"},
             {"subject_id": "s2", "agency": "bank-a", "identifier": "6222001", "category": "deposit"}]
    fresh = rules.new_assets(known, found)
    assert [(a["subject_id"], a["agency"]) for a in fresh] == [("s2", "bank-a"), ("s1", "bank-b")]


@pytest.mark.parametrize("key, value, rule", [
    ("min_months_after_filing", 2, "at least 3"), ("requery_every_months", 7, "1..6"),
    ("requery_years", 4, "at least 5"), ("required_categories", [], "at least one asset category"),
])
def test_settings_may_tighten_the_law_but_not_loosen_it(key, value, rule) -> None:
    with pytest.raises(ConfigError, match=rf"termination\.{key}.*{rule}|{rule}"):
        load_settings({"termination": {key: value}}, environ={})
    assert load_settings({"termination": {"requery_every_months": 3}}, environ={}).termination.requery_every_months == 3
