"""schemas.canonical: each broken rule is reported under its field's path."""

from __future__ import annotations

from decimal import Decimal

import pytest
from marshmallow import ValidationError

from schemas.canonical import AssetRecordSchema, CaseSchema, RequestSubmissionSchema, SubjectSchema
from schemas.errors import describe_errors, flatten_errors
from schemas.identifiers import resident_id_check_digit

PERSON_ID = "11010519491231002X"
PERSON_ID_2 = "44030419900101123" + resident_id_check_digit("44030419900101123")
ORG_ID = "91350100M000100Y43"
CASE = "(2024)浙0102执1234号"


def wrong_last(value: str, alphabet: str) -> str:
    return value[:17] + next(c for c in alphabet if c != value[17])


def errors_of(schema, data) -> dict[str, list[str]]:
    with pytest.raises(ValidationError) as info:
        schema.load(data)
    return flatten_errors(info.value.messages)


def person(id_number: str = PERSON_ID, name: str = "张三") -> dict:
    return {"kind": "person", "name": name, "id_number": id_number}


def organisation(id_number: str = ORG_ID) -> dict:
    return {"kind": "organization", "name": "某某有限公司", "id_number": id_number}


def case(**changes) -> dict:
    data = {
        "case_number": CASE,
        "court_code": "330102",
        "amount_owed": "150000.00",
        "parties": [{"role": "debtor", "subject": person()}, {"role": "creditor", "subject": organisation()}],
    }
    data.update(changes)
    return data


def submission(**changes) -> dict:
    data = {"case_number": CASE, "subject": person(), "action": "inquiry", "categories": ["identity", "vehicle"]}
    data.update(changes)
    return data


# --- SubjectSchema ---------------------------------------------------------------


def test_valid_person_and_organisation_load() -> None:
    assert SubjectSchema().load(person()) == person()
    assert SubjectSchema().load(organisation()) == organisation()


def test_person_with_bad_check_digit_is_reported_under_id_number() -> None:
    bad = wrong_last(PERSON_ID, "0123456789X")
    flat = errors_of(SubjectSchema(), person(bad))
    assert list(flat) == ["id_number"]
    assert "check digit is wrong" in flat["id_number"][0]


def test_organisation_with_bad_uscc_is_reported_under_id_number() -> None:
    bad = wrong_last(ORG_ID, "0123456789ABCDEFGHJKLMNPQRTUWXY")
    flat = errors_of(SubjectSchema(), organisation(bad))
    assert list(flat) == ["id_number"]
    assert "check character is wrong" in flat["id_number"][0]


def test_person_kind_with_an_organisation_code_is_refused() -> None:
    flat = errors_of(SubjectSchema(), {"kind": "person", "name": "x", "id_number": ORG_ID})
    assert list(flat) == ["id_number"]


def test_lower_case_x_is_normalised() -> None:
    assert SubjectSchema().load(person(PERSON_ID.lower()))["id_number"] == PERSON_ID


def test_lower_case_uscc_is_normalised() -> None:
    assert SubjectSchema().load(organisation(ORG_ID.lower()))["id_number"] == ORG_ID


def test_unknown_kind_and_missing_name() -> None:
    flat = errors_of(SubjectSchema(), {"kind": "robot", "id_number": PERSON_ID})
    assert set(flat) == {"kind", "name"}
    assert flat["kind"] == ["must be one of: person, organization"]


def test_name_too_long() -> None:
    assert set(errors_of(SubjectSchema(), person(name="张" * 101))) == {"name"}


def test_unknown_field_is_refused_by_name() -> None:
    flat = errors_of(SubjectSchema(), {**person(), "nickname": "三儿"})
    assert list(flat) == ["nickname"]


# --- CaseSchema --------------------------------------------------------------------


def test_valid_case_loads() -> None:
    loaded = CaseSchema().load(case())
    assert loaded["case_number"] == CASE
    assert loaded["amount_owed"] == Decimal("150000.00")
    assert [p["role"] for p in loaded["parties"]] == ["debtor", "creditor"]


@pytest.mark.parametrize("amount", ["0.00", "150000.00", "1.50", "9999999999999999.99"])
def test_money_accepted(amount: str) -> None:
    assert CaseSchema().load(case(amount_owed=amount))["amount_owed"] == Decimal(amount)


@pytest.mark.parametrize("amount", ["150000", "1.5", "-1.00", 150000, 150000.0, "1,500.00", "01.00", "1.000",
                                    " 1.00", "1e5", "", None, True, "99999999999999999.00"])
def test_money_refused(amount) -> None:
    flat = errors_of(CaseSchema(), case(amount_owed=amount))
    assert list(flat) == ["amount_owed"]
    if amount is not None:
        assert flat["amount_owed"] == ['must be a decimal string in yuan with two places, such as "150000.00"']


def test_case_with_no_debtor_is_refused_under_parties() -> None:
    flat = errors_of(CaseSchema(), case(parties=[{"role": "creditor", "subject": organisation()}]))
    assert flat == {"parties": ["a case needs at least one party with role debtor"]}


def test_case_with_no_parties_is_refused_under_parties() -> None:
    assert list(errors_of(CaseSchema(), case(parties=[]))) == ["parties"]


def test_same_subject_twice_in_one_role_is_refused() -> None:
    parties = [{"role": "debtor", "subject": person()}, {"role": "debtor", "subject": person(PERSON_ID.lower())}]
    flat = errors_of(CaseSchema(), case(parties=parties))
    assert flat == {"parties": ["the same subject is listed twice in the same role"]}


def test_two_different_debtors_are_fine() -> None:
    parties = [{"role": "debtor", "subject": person()}, {"role": "debtor", "subject": person(PERSON_ID_2)}]
    assert len(CaseSchema().load(case(parties=parties))["parties"]) == 2


def test_nested_subject_error_names_its_path() -> None:
    bad = wrong_last(PERSON_ID, "0123456789X")
    parties = [{"role": "creditor", "subject": organisation()}, {"role": "debtor", "subject": person(bad)}]
    flat = errors_of(CaseSchema(), case(parties=parties))
    assert list(flat) == ["parties[1].subject.id_number"]
    assert describe_errors(flat).startswith("parties[1].subject.id_number: resident ID number check digit is wrong")


def test_full_width_parentheses_are_normalised() -> None:
    assert CaseSchema().load(case(case_number="（2024）浙0102执1234号"))["case_number"] == CASE


@pytest.mark.parametrize("number", ["2024浙0102执1234号", "(2024)浙0102执0号", "(1989)浙0102执1号", ""])
def test_bad_case_number_is_refused_under_case_number(number: str) -> None:
    assert list(errors_of(CaseSchema(), case(case_number=number))) == ["case_number"]


@pytest.mark.parametrize("code", ["3", "33-01", "3" * 33])
def test_bad_court_code(code: str) -> None:
    assert errors_of(CaseSchema(), case(court_code=code)) == {"court_code": ["must be 2 to 32 letters or digits"]}


def test_case_unknown_field_is_refused() -> None:
    assert list(errors_of(CaseSchema(), case(judge="李四"))) == ["judge"]


def test_case_missing_fields() -> None:
    flat = errors_of(CaseSchema(), {})
    assert set(flat) == {"case_number", "court_code", "amount_owed", "parties"}


# --- RequestSubmissionSchema ----------------------------------------------------------


def test_valid_submission_loads_with_defaults() -> None:
    loaded = RequestSubmissionSchema().load(submission(case_number="（2024）浙0102执1234号",
                                                       subject=person(PERSON_ID.lower())))
    assert loaded["case_number"] == CASE
    assert loaded["subject"]["id_number"] == PERSON_ID
    assert loaded["categories"] == ["identity", "vehicle"]
    assert loaded["legal_basis"] is None
    assert loaded["amount"] is None
    assert loaded["targets"] == []


def test_categories_may_be_left_out() -> None:
    data = submission()
    del data["categories"]
    assert RequestSubmissionSchema().load(data)["categories"] is None


def test_duplicate_categories_are_refused() -> None:
    flat = errors_of(RequestSubmissionSchema(), submission(categories=["vehicle", "identity", "vehicle"]))
    assert flat == {"categories": ["'vehicle' is listed twice"]}


def test_unknown_category_is_reported_at_its_index() -> None:
    flat = errors_of(RequestSubmissionSchema(), submission(categories=["identity", "gold"]))
    assert list(flat) == ["categories[1]"]


def test_empty_categories_are_refused() -> None:
    assert list(errors_of(RequestSubmissionSchema(), submission(categories=[]))) == ["categories"]


def test_submission_unknown_field_is_refused() -> None:
    assert list(errors_of(RequestSubmissionSchema(), submission(priority="high"))) == ["priority"]


def test_submission_subject_error_names_its_path() -> None:
    bad = wrong_last(ORG_ID, "0123456789ABCDEFGHJKLMNPQRTUWXY")
    flat = errors_of(RequestSubmissionSchema(), submission(subject=organisation(bad)))
    assert list(flat) == ["subject.id_number"]


def test_submission_amount_and_legal_basis() -> None:
    loaded = RequestSubmissionSchema().load(submission(
        action="freeze", categories=["deposit"], amount="1000.00",
        legal_basis={"kind": "ruling", "number": "(2024)浙0102执1234号之一"},
    ))
    assert loaded["amount"] == Decimal("1000.00")
    assert loaded["legal_basis"] == {"kind": "ruling", "number": "(2024)浙0102执1234号之一"}
    flat = errors_of(RequestSubmissionSchema(), submission(amount="1000", legal_basis={"kind": "letter", "number": ""}))
    assert set(flat) == {"amount", "legal_basis.kind", "legal_basis.number"}


def test_unknown_action_is_refused() -> None:
    assert list(errors_of(RequestSubmissionSchema(), submission(action="arrest"))) == ["action"]


# --- AssetRecordSchema and flatten_errors ---------------------------------------------


def test_asset_record_defaults_and_money() -> None:
    loaded = AssetRecordSchema().load({"category": "deposit", "identifier": "6222****1234", "description": "account",
                                       "balance": "12.30"})
    assert loaded["balance"] == Decimal("12.30")
    assert loaded["value"] is None
    assert loaded["encumbrances"] == [] and loaded["details"] == {}
    flat = errors_of(AssetRecordSchema(), {"category": "gold", "identifier": "", "description": "x", "balance": "1"})
    assert set(flat) == {"category", "identifier", "balance"}


def test_flatten_errors_paths() -> None:
    messages = {"subject": {"id_number": ["bad"]}, "parties": {0: {"subject": {"kind": ["x"]}}},
                "_schema": ["whole"], "categories": {2: ["no"]}}
    assert flatten_errors(messages) == {
        "subject.id_number": ["bad"],
        "parties[0].subject.kind": ["x"],
        "_body": ["whole"],
        "categories[2]": ["no"],
    }
