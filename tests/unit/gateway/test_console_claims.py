"""gateway.people.claims: a verified ID token's claims to a console person, each
refusal naming its rule."""

from __future__ import annotations

import pytest

from gateway.errors import LoginRefused
from gateway.people.claims import ClaimRules, person_from_claims
from gateway.settings import load_settings

RULES = ClaimRules.from_settings(load_settings(environ={}).console)
OFFICER = {"sub": "officer.wang", "role": "court_officer", "court": "330102"}


def refused(claims: dict, rules: ClaimRules = RULES) -> LoginRefused:
    with pytest.raises(LoginRefused) as info:
        person_from_claims(claims, rules)
    assert info.value.fields == {"rule": info.value.rule} and info.value.http_status == 403
    return info.value


def test_an_officer_a_judge_and_an_auditor_are_mapped() -> None:
    assert person_from_claims(OFFICER, RULES).role == "court_officer"
    judge = person_from_claims({"sub": "judge.zhao", "role": "approver", "court": "330102"}, RULES)
    assert (judge.sub, judge.role, judge.court) == ("judge.zhao", "approver", "330102")
    auditor = person_from_claims({"sub": "auditor.sun", "role": "auditor"}, RULES)
    assert (auditor.role, auditor.court) == ("auditor", None)


def test_a_missing_role_is_refused_naming_the_claim_and_the_setting() -> None:
    error = refused({"sub": "x", "court": "330102"})
    assert error.rule == "role_missing"
    assert "claim 'role' is missing" in error.message and "console.role_claim" in error.message


@pytest.mark.parametrize("role", ["clerk", "admin", "agency", "", 7, None, ["clerk", "visitor"], []])
def test_a_role_no_console_role_matches_is_refused(role) -> None:
    error = refused({**OFFICER, "role": role})
    assert error.rule == "role_unknown"
    assert "names no console role" in error.message and "console.role_values" in error.message


def test_a_list_of_groups_maps_through_its_one_console_role() -> None:
    assert person_from_claims({**OFFICER, "role": ["staff", "court_officer", "parking"]}, RULES).role == "court_officer"


def test_groups_that_map_to_two_console_roles_are_refused() -> None:
    error = refused({**OFFICER, "role": ["court_officer", "approver"]})
    assert error.rule == "role_ambiguous" and "approver, court_officer" in error.message


@pytest.mark.parametrize("role", ["court_officer", "approver"])
def test_a_court_role_without_a_court_is_refused(role) -> None:
    error = refused({"sub": "x", "role": role})
    assert error.rule == "court_missing" and f"a {role} must name a court" in error.message


@pytest.mark.parametrize("court", ["33 0102", "<script>", 330102, ["330102"], "x"])
def test_a_court_that_is_not_a_court_code_is_refused(court) -> None:
    assert refused({**OFFICER, "court": court}).rule == "court_invalid"


@pytest.mark.parametrize("sub", [None, "", "   ", 12, "x" * 201])
def test_a_token_that_names_no_person_is_refused(sub) -> None:
    assert refused({**OFFICER, "sub": sub}).rule == "subject_missing"


def test_claim_names_and_role_values_are_the_settings() -> None:
    section = load_settings({"console": {"role_claim": "groups", "court_claim": "court_code",
                                         "role_values": {"enforcement-officer": "court_officer"}}}, environ={}).console
    rules = ClaimRules.from_settings(section)
    person = person_from_claims({"sub": "w", "groups": ["enforcement-officer"], "court_code": "330102"}, rules)
    assert (person.role, person.court) == ("court_officer", "330102")
    error = refused({"sub": "w", "role": "court_officer", "court": "330102"}, rules)  # the default claim is not read
    assert error.rule == "role_missing" and "claim 'groups'" in error.message
