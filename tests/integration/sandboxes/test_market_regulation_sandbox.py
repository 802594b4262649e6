"""The market regulation sandbox's side of the contract, over real HTTP on loopback.

Requests are written out here from docs/agencies/market-regulation.md (no
codec involved), so the sandbox is checked against the document, not against
the gateway.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import re
import time
import uuid
from datetime import timedelta
from typing import Any, Callable, Iterator

import pytest
import requests

from sandboxes.market_regulation import create_app, describe_subject
from sandboxes.market_regulation_data import subject_seed
from sandboxes.server import FaultKnobs, SandboxServer
from schemas.identifiers import check_uscc, resident_id_check_digit
from gateway.timeutil import court_today

PREFIX = "/samr/v1"
JSON_UTF8 = "application/json; charset=utf-8"


def resident_ids(region: str = "330102") -> Iterator[str]:
    for sequence in itertools.count():
        body = f"{region}19800101{sequence:03d}"
        yield body + resident_id_check_digit(body)


def holder() -> str:
    return next(n for n in resident_ids() if describe_subject(n, "张三")["GQ"])


def head(xxid: str | None = None) -> dict[str, str]:
    return {"XXID": xxid or str(uuid.uuid4()), "CJSJ": "2026-11-23T10:00:00Z", "FYDM": "330102",
            "CBR": "officer.wang", "AH": "(2024)浙0102执1234号", "WSLX": "ruling", "WSH": "(2024)浙0102执1234号之一"}


def inquiry(id_number: str, **query) -> dict:
    return {"Head": head(), "Query": {"Inv": "张三", "CerType": "10", "CerNo": id_number, "CXLB": ["QYDJ", "GQ"], **query}}


def freeze(id_number: str, company: str, **line) -> dict:
    item = {"UniSCID": company, "FroAm": "1000.00", "FroFrom": court_today().isoformat(),
            "FroTo": (court_today() + timedelta(days=365)).isoformat(), **line}
    return {"Head": head(), "Execute": {"ExecuteItem": "1", "Inv": "张三", "CerType": "10", "CerNo": id_number,
                                        "Items": [item]}}


def post(server: SandboxServer, operation: str, document: Any, *, body: bytes | None = None,
         content_type: str = JSON_UTF8, message_id: str | None = "") -> requests.Response:
    raw = body if body is not None else json.dumps(document, ensure_ascii=False).encode("utf-8")
    headers = {"Content-Type": content_type}
    if message_id == "" and isinstance(document, dict) and isinstance(document.get("Head"), dict):
        message_id = document["Head"].get("XXID")
    if message_id:
        headers["X-Message-Id"] = message_id
    return requests.post(f"{server.url}{PREFIX}/{operation}", data=raw, headers=headers, timeout=10)


@pytest.fixture
def start_server() -> Iterator[Callable[..., SandboxServer]]:
    started: list[SandboxServer] = []

    def start(knobs: FaultKnobs | None = None) -> SandboxServer:
        started.append(SandboxServer(create_app(knobs), port=0).start())
        return started[-1]

    yield start
    for server in started:
        server.stop()


@pytest.fixture
def server(start_server) -> SandboxServer:
    return start_server()


def state(server: SandboxServer):
    return server.app.extensions["samr_sandbox"]


def test_an_inquiry_is_answered_with_the_hash_of_the_exact_bytes(server):
    person = holder()
    document = inquiry(person)
    body = json.dumps(document, ensure_ascii=False, indent=2).encode("utf-8")

    response = post(server, "inquiries", document, body=body)

    assert response.status_code == 200 and response.headers["Content-Type"] == JSON_UTF8
    answer = response.json()
    assert answer["Head"]["XXID"] == document["Head"]["XXID"]
    assert answer["Head"]["QQSHA256"] == hashlib.sha256(body).hexdigest()
    assert (answer["Head"]["RESPONSECODE"], answer["Head"]["RESPONSEINFO"]) == ("0000", "成功")
    assert answer["Data"]["QYDJ"] is None
    assert [h["UniSCID"] for h in answer["Data"]["GQ"]] == [h["UniSCID"] for h in describe_subject(person, "张三")["GQ"]]


def test_records_are_deterministic_varied_and_well_formed():
    counts, states = set(), set()
    for person in itertools.islice((n for n in resident_ids("110105") if subject_seed(n)[0] % 8), 60):
        data = describe_subject(person, "李四")
        assert data == describe_subject(person, "李四")
        assert data["QYDJ"] is None
        counts.add(len(data["GQ"]))
        for holding in data["GQ"]:
            assert check_uscc(holding["UniSCID"]) == holding["UniSCID"]
            assert re.fullmatch(r"[1-9]\d*\.00", holding["SubConAm"]) and re.fullmatch(r"\d{1,2}\.00", holding["ConProp"])
            assert holding["EntName"].startswith("北京") and holding["EntName"].endswith("有限公司")
    for code in itertools.islice((f"91330100MA{n:07d}X" for n in itertools.count()), 40):
        data = describe_subject(code, "杭州某某科技有限公司", "20")
        if data["QYDJ"] is None:
            continue
        states.add(data["QYDJ"]["EntStatus"])
        assert data["QYDJ"]["UniSCID"] == code and re.fullmatch(r"330100\d{9}", data["QYDJ"]["RegNo"])
        assert len(data["GQ"]) <= 2
    assert counts == {0, 1, 2, 3}
    assert "1" in states


def test_a_subject_known_to_nobody_and_a_number_that_is_no_resident_id(server):
    nobody = next(n for n in resident_ids() if subject_seed(n)[0] % 8 == 0)
    for id_number in (nobody, "ABCDEFGHIJKLMNOPQR"):
        answer = post(server, "inquiries", inquiry(id_number)).json()
        assert answer["Data"] == {"QYDJ": None, "GQ": []}


def test_only_the_lists_asked_are_answered(server):
    answer = post(server, "inquiries", inquiry(holder(), CXLB=["GQ"])).json()
    assert list(answer["Data"]) == ["GQ"]


def test_a_repeated_xxid_gets_the_identical_bytes_and_no_second_freeze(server):
    person = holder()
    company = describe_subject(person, "张三")["GQ"][0]["UniSCID"]
    document = freeze(person, company)

    first = post(server, "controls", document)
    time.sleep(1.05)  # FKSJ has second precision: a re-rendered answer would differ
    repeat = post(server, "controls", document)

    assert first.status_code == repeat.status_code == 200
    assert repeat.content == first.content
    listed = post(server, "inquiries", inquiry(person, CXLB=["GQ"])).json()["Data"]["GQ"][0]["FrozList"]
    assert [f["FrozNo"] for f in listed] == [first.json()["Data"]["Items"][0]["FrozNo"]]
    assert (state(server).answered_count, state(server).duplicate_count, state(server).calls) == (2, 1, 3)


def _set(section: str, key: str, value: Any) -> Callable[[dict], None]:
    return lambda doc: doc[section].__setitem__(key, value)


def _item(key: str, value: Any = None, drop: bool = False) -> Callable[[dict], None]:
    def change(doc: dict) -> None:
        if drop:
            doc["Execute"]["Items"][0].pop(key)
        else:
            doc["Execute"]["Items"][0][key] = value
    return change


VIOLATIONS = [
    ("inquiries", "CerType of public security", _set("Query", "CerType", "1"), "Query.CerType"),
    ("inquiries", "CerNo short", _set("Query", "CerNo", "123"), "Query.CerNo"),
    ("inquiries", "unknown list", _set("Query", "CXLB", ["QYDJ", "FC"]), "Query.CXLB[1]"),
    ("inquiries", "unknown field", _set("Query", "XM", "张三"), "Query.XM"),
    ("inquiries", "Inv missing", lambda doc: doc["Query"].pop("Inv"), "Query.Inv"),
    ("inquiries", "CJSJ not UTC", _set("Head", "CJSJ", "2026-11-23T18:00:00+08:00"), "Head.CJSJ"),
    ("controls", "no legal basis", lambda doc: (doc["Head"].pop("WSLX"), doc["Head"].pop("WSH")), "Head.WSH"),
    ("controls", "forced transfer", _set("Execute", "ExecuteItem", "4"), "Execute.ExecuteItem"),
    ("controls", "no items", _set("Execute", "Items", []), "Execute.Items"),
    ("controls", "FroTo missing", _item("FroTo", drop=True), "Execute.Items[0].FroTo"),
    ("controls", "FroTo not a date", _item("FroTo", "2027-02-30"), "Execute.Items[0].FroTo"),
    ("controls", "FroTo before FroFrom", _item("FroTo", "2000-01-01"), "Execute.Items[0].FroTo"),
    ("controls", "FroAm a number", _item("FroAm", 1000), "Execute.Items[0].FroAm"),
    ("controls", "FroAm zero", _item("FroAm", "0.00"), "Execute.Items[0].FroAm"),
    ("controls", "OrigFrozNo on a freeze", _item("OrigFrozNo", "DJ1"), "Execute.Items[0].OrigFrozNo"),
    ("controls", "UniSCID short", _item("UniSCID", "9133"), "Execute.Items[0].UniSCID"),
]


@pytest.mark.parametrize("operation, change, field", [v[0:1] + v[2:] for v in VIOLATIONS], ids=[v[1] for v in VIOLATIONS])
def test_contract_violations_are_refused_naming_the_field(server, operation, change, field):
    person = holder()
    document = inquiry(person) if operation == "inquiries" else freeze(person, describe_subject(person, "张三")["GQ"][0]["UniSCID"])
    change(document)

    response = post(server, operation, document)

    assert response.status_code == 400
    answer = response.json()
    assert "Data" not in answer
    assert answer["Head"]["RESPONSECODE"] == "3000"
    assert answer["Head"]["RESPONSEINFO"].startswith(f"{field}: "), answer["Head"]["RESPONSEINFO"]
    assert answer["Head"]["XXID"] == document["Head"]["XXID"]
    assert (state(server).answered_count, state(server).rejected_count) == (0, 1)


@pytest.mark.parametrize(("body", "headers", "field"), [
    (b"not json", {}, "body"),
    (b'{"Head": {}, "Head": {}}', {}, "body"),
    (None, {"content_type": "text/plain"}, "Content-Type"),
    (None, {"message_id": "another"}, "X-Message-Id"),
    (None, {"message_id": None}, "X-Message-Id"),
])
def test_bodies_and_headers_outside_the_contract_are_refused(server, body, headers, field):
    response = post(server, "inquiries", inquiry(holder()), body=body, **headers)
    assert response.status_code == 400
    assert response.json()["Head"]["RESPONSEINFO"].startswith(f"{field}: ")


def test_a_body_over_64_kib_is_refused(server):
    document = inquiry(holder())
    document["Head"]["AH"] = "案" * 30_000
    response = post(server, "inquiries", document)
    assert response.status_code == 400 and response.json()["Head"]["RESPONSEINFO"].startswith("body: ")


def test_injected_failures_answer_503_and_change_nothing(start_server):
    server = start_server(FaultKnobs(failure_rate=1.0))
    person = holder()
    document = freeze(person, describe_subject(person, "张三")["GQ"][0]["UniSCID"])
    response = post(server, "controls", document)
    assert response.status_code == 503
    assert response.json()["Head"] | {"FKSJ": None} == {
        "XXID": document["Head"]["XXID"], "RESPONSECODE": "1000",
        "RESPONSEINFO": "temporarily unable to answer (injected failure)", "FKSJ": None}
    assert (state(server).calls, state(server).failures_injected, state(server).answered_count) == (1, 1, 0)


def test_latency_knob_and_health_check(start_server):
    server = start_server(FaultKnobs(latency_seconds=0.2))
    started = time.monotonic()
    assert post(server, "inquiries", inquiry(holder())).status_code == 200
    assert time.monotonic() - started >= 0.2
    assert requests.get(f"{server.url}{PREFIX}/healthz", timeout=5).json() == {"status": "ok"}


def test_the_prefix_is_configurable_and_checked():
    with pytest.raises(ValueError, match="prefix"):
        create_app(prefix="samr")
    with SandboxServer(create_app(prefix="/other/")) as server:
        assert requests.get(f"{server.url}/other/healthz", timeout=5).status_code == 200
