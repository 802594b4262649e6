"""POST /api/v1/cases through real HTTP: clear 400s, court ownership, audit."""

import pytest

from conftest import CASE_NUMBER, COURT, CREDITOR, DEBTOR, audit_rows


def test_register_then_update_case(api, app):
    first = api.register_case()
    assert first.status_code == 201, first.text
    body = first.json()
    assert body["created"] is True and body["amount_owed"] == "150000.00"
    assert {p["role"] for p in body["parties"]} == {"debtor", "creditor"}

    again = api.post("/api/v1/cases", json={"case_number": CASE_NUMBER, "court_code": COURT, "amount_owed": "90000.50",
                                            "parties": [{"role": "debtor", "subject": DEBTOR}]})
    assert again.status_code == 200
    assert again.json()["amount_owed"] == "90000.50" and len(again.json()["parties"]) == 1
    assert [e.action for e in audit_rows(app)] == ["case.register", "case.update"]


def test_full_width_case_number_is_the_same_case(api):
    assert api.register_case().status_code == 201
    reply = api.register_case(case_number="（2024）浙0102执1234号")
    assert reply.status_code == 200 and reply.json()["case_number"] == CASE_NUMBER
    # The same number in full-width forms in a path or a query names the same case too.
    for typed in ("（2024）浙0102执1234号", "（２０２４）浙０１０２执１２３４号", "〔2024〕浙0102执1234号"):
        report = api.get(f"/api/v1/cases/{typed}/subjects/{DEBTOR['id_number']}/assets")
        assert report.status_code == 200 and report.json()["case_number"] == CASE_NUMBER, (typed, report.text)
        assert api.get(f"/api/v1/cases/{typed}/controls").status_code == 200
        assert api.get("/api/v1/controls/due", params={"case_number": typed}).status_code == 200


@pytest.mark.parametrize(
    "change, field, rule",
    [
        ({"parties": [{"role": "debtor", "subject": {**DEBTOR, "id_number": "330102198703151158"}}]},
         "parties[0].subject.id_number", "check digit"),
        ({"parties": [{"role": "debtor", "subject": {**DEBTOR, "id_number": "330102198702301157"}}]},
         "parties[0].subject.id_number", "not a real calendar date"),
        ({"parties": [{"role": "debtor", "subject": {**CREDITOR, "id_number": "91350100M000100Y44"}}]},
         "parties[0].subject.id_number", "check character"),
        ({"case_number": "2024-1234"}, "case_number", "must look like"),
        ({"amount_owed": "150000"}, "amount_owed", "two places"),
        ({"amount_owed": 150000.0}, "amount_owed", "two places"),
        ({"amount_owed": "-1.00"}, "amount_owed", "two places"),
        ({"court_code": "3"}, "court_code", "2 to 32"),
        ({"parties": [{"role": "creditor", "subject": CREDITOR}]}, "parties", "role debtor"),
        ({"parties": [{"role": "owner", "subject": DEBTOR}]}, "parties[0].role", "must be one of"),
        ({"parties": [{"role": "debtor", "subject": {**DEBTOR, "kind": "robot"}}]}, "parties[0].subject.kind", "must be one of"),
        ({"surprise": 1}, "surprise", "Unknown field"),
    ],
)
def test_bad_case_is_refused_naming_the_field(api, change, field, rule):
    body = {"case_number": CASE_NUMBER, "court_code": COURT, "amount_owed": "150000.00",
            "parties": [{"role": "debtor", "subject": DEBTOR}], **change}
    reply = api.post("/api/v1/cases", json=body)
    assert reply.status_code == 400, reply.text
    error = reply.json()["error"]
    assert error["code"] == "invalid_input"
    assert field in error["fields"], error
    assert any(rule in text for text in error["fields"][field]), error["fields"][field]


def test_several_bad_fields_are_all_named(api):
    reply = api.post("/api/v1/cases", json={"case_number": "x", "court_code": COURT, "amount_owed": "1",
                                            "parties": []})
    assert reply.status_code == 400
    assert {"case_number", "amount_owed", "parties"} <= set(reply.json()["error"]["fields"])


def test_body_must_be_json(api):
    reply = api.post("/api/v1/cases", data="case=1", headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert reply.status_code == 400 and reply.json()["error"]["fields"]["_body"]
    broken = api.post("/api/v1/cases", data="{not json", headers={"Content-Type": "application/json"})
    assert broken.status_code == 400 and "not valid JSON" in broken.json()["error"]["message"]


def test_a_court_registers_only_its_own_cases(api, app):
    reply = api.register_case(court_code="110105")
    assert reply.status_code == 403
    assert api.register_case().status_code == 201
    # Another court's number is refused by its court part, whether or not the case exists.
    beijing = api.token(court="110105", sub="officer.li")
    for case_number in (CASE_NUMBER, "(2024)浙0102执9999号"):
        other = api.register_case(case_number=case_number, court_code="110105", token=beijing)
        assert other.status_code == 422 and other.json()["error"]["code"] == "rule_violation", other.text
    refused = [e for e in audit_rows(app) if e.outcome == "refused"]
    assert [e.details["status"] for e in refused] == [403, 422, 422]


def test_the_court_part_of_a_case_number_is_the_courts(api, app):
    """Court 330102's numbers are 浙0102 (config/courts.toml): it may not register
    (2024)京0105执3号, Beijing Chaoyang's; nor may a court the table does not know."""
    reply = api.register_case(case_number="(2024)京0105执3号")
    assert reply.status_code == 422, reply.text
    error = reply.json()["error"]
    assert error["code"] == "rule_violation" and list(error["fields"]) == ["case_number"]
    assert "京0105" in error["fields"]["case_number"][0] and "浙0102" in error["fields"]["case_number"][0]
    assert api.register_case(case_number="(2024)浙01执3号").status_code == 422  # the intermediate court's
    beijing = api.token(court="110105", sub="officer.li")
    assert api.register_case(case_number="(2024)京0105执3号", court_code="110105", token=beijing).status_code == 201

    unknown = api.register_case(case_number="(2024)浙0199执3号", court_code="330199",
                                token=api.token(court="330199", sub="officer.qian"))
    assert unknown.status_code == 422 and "court code table" in unknown.json()["error"]["fields"]["court_code"][0]
    with app.extensions["db"].reading() as session:
        from gateway.cases.models import Case
        assert [c.case_number for c in session.query(Case)] == ["(2024)京0105执3号"]


def test_only_officers_register_cases(api):
    assert api.register_case(token=api.token(role="auditor", court=None, sub="auditor.zhao")).status_code == 403
    assert api.register_case(token=None).status_code == 401


def test_oversized_body_is_refused(api):
    reply = api.post("/api/v1/cases", data=b"{" + b" " * (2 * 1024 * 1024) + b"}",
                     headers={"Content-Type": "application/json"})
    assert reply.status_code == 413 and reply.json()["error"]["code"]


OTHER_CASE = "(2024)浙0102执1235号"


def test_a_name_belongs_to_its_case_party(api, app):
    """Case B registers case A's debtor (same identity number) under another name:
    A keeps its name, in its report and in what agencies are sent for A; B's reply flags
    the conflict (without showing A's name) and so does the audit log."""
    from datetime import datetime, timezone

    from gateway.deliveries.progress import load_orders

    assert api.register_case().status_code == 201
    renamed = {**DEBTOR, "name": "张叁"}
    other = api.register_case(case_number=OTHER_CASE, parties=[{"role": "debtor", "subject": renamed}])
    assert other.status_code == 201, other.text
    (party,) = other.json()["parties"]
    assert party["name_conflict"] is True and party["subject"]["name"] == "张叁"
    assert "张三" not in other.text

    def report_name(case_number):
        reply = api.get(f"/api/v1/cases/{case_number}/subjects/{DEBTOR['id_number']}/assets")
        assert reply.status_code == 200, reply.text
        return reply.json()["subject"]["name"]

    assert report_name(CASE_NUMBER) == "张三" and report_name(OTHER_CASE) == "张叁"
    first = api.register_case()  # A again, same name: no conflict of its own making
    assert {p["role"]: p["name_conflict"] for p in first.json()["parties"]} == {"debtor": True, "creditor": False}
    assert report_name(CASE_NUMBER) == "张三"

    deliveries = {}
    for case_number in (CASE_NUMBER, OTHER_CASE):
        accepted = api.inquire(case_number=case_number)
        assert accepted.status_code == 202, accepted.text
        deliveries[case_number] = accepted.json()["deliveries"][0]["id"]
    with app.extensions["db"].reading() as session:
        orders = load_orders(session, list(deliveries.values()), now=datetime.now(timezone.utc))
    assert orders[deliveries[CASE_NUMBER]][0].subject.name == "张三"
    assert orders[deliveries[OTHER_CASE]][0].subject.name == "张叁"

    events = [e for e in audit_rows(app) if e.action in ("case.register", "case.update")]
    assert [e.details.get("name_conflicts") for e in events] == [None, ["3301**********1157"], ["3301**********1157"]]


def test_a_case_corrects_its_own_party_name(api):
    assert api.register_case().status_code == 201
    corrected = api.register_case(parties=[{"role": "debtor", "subject": {**DEBTOR, "name": "张三丰"}}])
    assert corrected.status_code == 200
    assert corrected.json()["parties"][0] == {
        "role": "debtor", "name_conflict": False,
        "subject": {**corrected.json()["parties"][0]["subject"], "name": "张三丰"}}
    report = api.get(f"/api/v1/cases/{CASE_NUMBER}/subjects/{DEBTOR['id_number']}/assets").json()
    assert report["subject"]["name"] == "张三丰"
