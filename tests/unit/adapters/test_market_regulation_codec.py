"""adapters.codecs.market_regulation against docs/agencies/market-regulation.md."""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import replace
from datetime import date
from decimal import Decimal

import pytest

from adapters import CODECS
from adapters.codecs.market_regulation import MarketRegulationCodec
from adapters.errors import AgencyRefused, AgencyUnavailable, AnswerNotBound, IncomingInvalid, OutgoingInvalid
from adapters.interfaces import ControlLine, DeliveryOrder, Envelope, Reply, SubjectRef
from schemas.canonical import AssetRecordSchema, ControlOutcomeSchema
from gateway.timeutil import court_today

MESSAGE_ID = "5d1c7a52-0e7b-4c55-8d8e-9b1f7f0c2a11"
PERSON_ID = "11010519491231002X"
ORG_ID = "91350100M000100Y43"
COMPANY = "91330106MA27XK1L0B"
OTHER_COMPANY = "91330100MA2H7Q3C4D"
CASE = "(2024)浙0102执1234号"
UNTIL = date(2029, 6, 30)


def order(**changes) -> DeliveryOrder:
    base = DeliveryOrder(
        court_date=court_today(),
        message_id=MESSAGE_ID, action="inquiry", categories=("enterprise", "equity"),
        subject=SubjectRef(kind="person", name="张三", id_number=PERSON_ID), case_number=CASE,
        court_code="330102", officer="officer.wang", legal_basis_kind="ruling", legal_basis_number="(2024)浙0102执1234号之一",
    )
    return replace(base, **changes)


def freeze_order(*lines: ControlLine, **changes) -> DeliveryOrder:
    return order(action="freeze", categories=("equity",),
                 lines=lines or (ControlLine(COMPANY, amount=Decimal("500000.00"), until=UNTIL),), **changes)


@pytest.fixture
def codec() -> MarketRegulationCodec:
    return MarketRegulationCodec()


def body_of(envelope: Envelope) -> dict:
    return json.loads(envelope.body.decode("utf-8"))


def today() -> str:
    return court_today().isoformat()  # the court's date (Beijing), as the gateway sets it


# --- what the codec can do, and encode ---------------------------------------------


def test_codec_is_registered_with_what_it_can_do() -> None:
    assert CODECS["market_regulation"] is MarketRegulationCodec
    assert MarketRegulationCodec.kind == "market_regulation"
    assert MarketRegulationCodec.action_categories == {
        "inquiry": ("enterprise", "equity"), "freeze": ("equity",), "renew": ("equity",), "unfreeze": ("equity",)}
    assert MarketRegulationCodec.categories == ("enterprise", "equity")
    assert MarketRegulationCodec.actions == ("inquiry", "freeze", "renew", "unfreeze")
    assert MarketRegulationCodec.transports == ("rest",)


def test_encode_an_inquiry(codec) -> None:
    envelope = codec.encode(order())
    assert (envelope.message_id, envelope.operation, envelope.media_type) == (
        MESSAGE_ID, "inquiries", "application/json; charset=utf-8")
    message = body_of(envelope)
    head = message["Head"]
    assert re.fullmatch(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z", head.pop("CJSJ"))
    assert head == {"XXID": MESSAGE_ID, "FYDM": "330102", "CBR": "officer.wang", "AH": CASE,
                    "WSLX": "ruling", "WSH": "(2024)浙0102执1234号之一"}
    assert message["Query"] == {"Inv": "张三", "CerType": "10", "CerNo": PERSON_ID, "CXLB": ["QYDJ", "GQ"]}
    assert "张三".encode() in envelope.body and b"\\u" not in envelope.body


def test_organisations_have_certificate_type_20(codec) -> None:
    query = body_of(codec.encode(order(subject=SubjectRef("organization", "某某有限公司", ORG_ID),
                                       categories=("equity",))))["Query"]
    assert (query["CerType"], query["CerNo"], query["CXLB"]) == ("20", ORG_ID, ["GQ"])


def test_encode_a_freeze(codec) -> None:
    lines = (ControlLine(COMPANY, amount=Decimal("500000"), until=UNTIL), ControlLine(OTHER_COMPANY, until=UNTIL))
    envelope = codec.encode(freeze_order(*lines))
    assert envelope.operation == "controls"
    assert body_of(envelope)["Execute"] == {
        "ExecuteItem": "1", "Inv": "张三", "CerType": "10", "CerNo": PERSON_ID,
        "Items": [{"UniSCID": COMPANY, "FroAm": "500000.00", "FroFrom": today(), "FroTo": "2029-06-30"},
                  {"UniSCID": OTHER_COMPANY, "FroFrom": today(), "FroTo": "2029-06-30"}],
    }


def test_encode_a_renewal_and_a_release(codec) -> None:
    renew = body_of(codec.encode(order(action="renew", categories=("equity",),
                                       lines=(ControlLine(COMPANY, until=UNTIL, original_reference="DJ00000001"),))))
    assert renew["Execute"]["ExecuteItem"] == "2"
    assert renew["Execute"]["Items"] == [{"UniSCID": COMPANY, "FroTo": "2029-06-30", "OrigFrozNo": "DJ00000001"}]
    release = body_of(codec.encode(order(action="unfreeze", categories=("equity",),
                                         lines=(ControlLine(COMPANY, original_reference="DJ00000001"),))))
    assert release["Execute"]["ExecuteItem"] == "3"
    assert release["Execute"]["Items"] == [{"UniSCID": COMPANY, "OrigFrozNo": "DJ00000001", "UnfroDate": today()}]


@pytest.mark.parametrize(
    ("make", "field"),
    [
        (lambda: freeze_order(ControlLine(COMPANY, amount=Decimal("1.00"))), "Execute.Items[0].FroTo"),
        (lambda: freeze_order(ControlLine("not-a-uscc", until=UNTIL)), "Execute.Items[0].UniSCID"),
        (lambda: freeze_order(ControlLine(COMPANY, until=UNTIL), ControlLine(COMPANY, until=UNTIL)), "Execute.Items[1].UniSCID"),
        (lambda: freeze_order(ControlLine(COMPANY, until=date(2000, 1, 1))), "Execute.Items[0].FroTo"),
        (lambda: order(action="freeze", categories=("equity",), lines=()), "Execute.Items"),
        (lambda: freeze_order(legal_basis_kind=None, legal_basis_number=None), "Head.WSH"),
        (lambda: order(action="renew", lines=(ControlLine(COMPANY, until=UNTIL),)), "Execute.Items[0].OrigFrozNo"),
        (lambda: order(action="unfreeze", lines=(ControlLine(COMPANY),)), "Execute.Items[0].OrigFrozNo"),
        (lambda: order(categories=("deposit",)), "Query.CXLB"),
        (lambda: order(subject=SubjectRef("person", "张三", "123")), "Query.CerNo"),
        (lambda: order(officer=""), "Head.CBR"),
    ],
)
def test_encode_refuses_what_breaks_the_format_naming_the_field(codec, make, field) -> None:
    with pytest.raises(OutgoingInvalid) as info:
        codec.encode(make())
    assert f"{field}:" in info.value.message


def test_encode_refuses_an_action_the_agency_does_not_take(codec) -> None:
    with pytest.raises(OutgoingInvalid, match="does not take action 'deduct'"):
        codec.encode(order(action="deduct"))


# --- decode: inquiry ----------------------------------------------------------------

ENTERPRISE = {"EntName": "某某有限公司", "UniSCID": ORG_ID, "RegNo": "350100000123456", "LeRep": "王建国",
              "EntStatus": "1", "EstDate": "2012-04-01", "RegCap": "5000000.00"}
FREEZE_IN_FORCE = {"FrozNo": "DJ1A2B3C4D", "ExeCourt": "310115", "RulingNo": "(2025)执保120号", "FroAm": "300000.00",
                   "FroFrom": "2025-03-01", "FroTo": "2028-03-01", "FrozState": "1"}
FREEZE_QUEUED = {"FrozNo": "DJ00000002", "ExeCourt": "330102", "RulingNo": "(2024)浙0102执1234号之一",
                 "FroAm": "300000.00", "FroTo": "2029-06-30", "QueuePos": 1}


def holding(**changes) -> dict:
    record = {"EntName": "杭州恒远科技有限公司", "UniSCID": COMPANY, "SubConAm": "300000.00", "ConProp": "30.00",
              "FrozList": [FREEZE_IN_FORCE, FREEZE_QUEUED]}
    record.update(changes)
    return record


def answer(envelope: Envelope, data: dict, *, status: int = 200, **head_changes) -> Reply:
    head = {"XXID": envelope.message_id, "QQSHA256": hashlib.sha256(envelope.body).hexdigest(),
            "RESPONSECODE": "0000", "RESPONSEINFO": "成功", "FKSJ": "2026-11-23T10:00:01Z", **head_changes}
    return Reply(status, json.dumps({"Head": head, "Data": data}, ensure_ascii=False).encode())


def test_decode_an_organisation_inquiry(codec) -> None:
    envelope = codec.encode(order(subject=SubjectRef("organization", "某某有限公司", ORG_ID)))
    result = codec.decode(answer(envelope, {"QYDJ": ENTERPRISE, "GQ": [holding()]}), envelope)
    assert AssetRecordSchema(many=True).load(result.assets)
    enterprise, equity = result.assets
    assert (enterprise["category"], enterprise["identifier"]) == ("enterprise", ORG_ID)
    assert "legal representative 王建国" in enterprise["description"]
    assert enterprise["details"]["registered_capital"] == "5000000.00"
    assert (equity["category"], equity["identifier"], equity["value"]) == ("equity", COMPANY, "300000.00")
    assert equity["encumbrances"] == [
        "frozen by court 310115, (2025)执保120号: 300000.00 yuan until 2028-03-01 (DJ1A2B3C4D)",
        "queued freeze no. 1 by court 330102, (2024)浙0102执1234号之一: 300000.00 yuan until 2029-06-30 (DJ00000002)",
    ]
    assert [f["queue_position"] for f in equity["details"]["freezes"]] == [None, 1]
    assert result.controls == []


def test_decode_a_person_with_nothing(codec) -> None:
    envelope = codec.encode(order())
    assert codec.decode(answer(envelope, {"QYDJ": None, "GQ": []}), envelope).assets == []


@pytest.mark.parametrize(
    ("data", "problem"),
    [
        ({"GQ": []}, "asked for"),
        ({"QYDJ": ENTERPRISE, "GQ": []}, "for a person"),
        ({"QYDJ": None, "GQ": [holding(ConProp="130.00")]}, "Data.GQ[0].ConProp:"),
        ({"QYDJ": None, "GQ": [holding(SubConAm=300000)]}, "Data.GQ[0].SubConAm:"),
        ({"QYDJ": None, "GQ": [holding(FrozList=[{**FREEZE_IN_FORCE, "QueuePos": 2}])]}, "Data.GQ[0].FrozList[0].FrozState:"),
        ({"QYDJ": None, "GQ": [holding(FrozList=[{**FREEZE_IN_FORCE, "FrozState": "9"}])]}, "Data.GQ[0].FrozList[0].FrozState:"),
        ({"QYDJ": None, "GQ": [holding(UniSCID="short")]}, "Data.GQ[0].UniSCID:"),
    ],
)
def test_decode_refuses_a_bad_inquiry_answer_naming_the_problem(codec, data, problem) -> None:
    envelope = codec.encode(order())
    with pytest.raises(IncomingInvalid) as info:
        codec.decode(answer(envelope, data), envelope)
    assert problem in info.value.message
    assert info.value.raw


# --- decode: controls -----------------------------------------------------------------


def executed(**fields) -> dict:
    return {"UniSCID": COMPANY, "EntName": "杭州恒远科技有限公司", **fields}


@pytest.mark.parametrize(
    ("make_order", "result", "expected"),
    [
        (freeze_order, executed(ExeResult="1", FrozNo="DJ00000001", FrozState="1", FroAm="500000.00",
                                FroFrom="2026-11-23", FroTo="2029-06-30"),
         {"outcome": "controlled", "amount_requested": "500000.00", "amount_controlled": "500000.00",
          "effective_from": "2026-11-23", "until": "2029-06-30", "agency_reference": "DJ00000001"}),
        (freeze_order, executed(ExeResult="1", FrozNo="DJ00000001", FrozState="1", FroAm="300000.00",
                                FroFrom="2026-11-23", FroTo="2029-06-30"),
         {"outcome": "partly_controlled", "amount_controlled": "300000.00"}),
        (freeze_order, executed(ExeResult="2", FrozNo="DJ00000002", FroAm="500000.00", FroTo="2029-06-30", QueuePos=2,
                                Ahead=[{"ExeCourt": "310115", "RulingNo": "(2025)执保120号", "FroTo": "2028-03-01"},
                                       {"ExeCourt": "330106", "RulingNo": "(2026)执保7号", "FroTo": "2028-05-01"}]),
         {"outcome": "queued", "queue_position": 2, "amount_controlled": None, "agency_reference": "DJ00000002",
          "ahead": ["court 310115, (2025)执保120号, until 2028-03-01", "court 330106, (2026)执保7号, until 2028-05-01"]}),
        (freeze_order, {"UniSCID": COMPANY, "ExeResult": "3", "Reason": "被执行人未持有该企业股权"},
         {"outcome": "not_controlled", "reason": "被执行人未持有该企业股权", "agency_reference": None}),
        (lambda: order(action="renew", lines=(ControlLine(COMPANY, until=UNTIL, original_reference="DJ00000001"),)),
         executed(ExeResult="3", FrozNo="DJ00000001", FrozState="3", Reason="冻结已失效", LapseReason="期限届满"),
         {"outcome": "not_controlled", "reason": "冻结已失效 (lapsed: 期限届满)"}),
        (lambda: order(action="renew", lines=(ControlLine(COMPANY, until=UNTIL, original_reference="DJ00000001"),)),
         executed(ExeResult="1", FrozNo="DJ00000001", FrozState="1", FroAm="500000.00", FroFrom="2026-11-23", FroTo="2029-06-30"),
         {"outcome": "controlled", "until": "2029-06-30", "amount_requested": None}),
        (lambda: order(action="unfreeze", lines=(ControlLine(COMPANY, original_reference="DJ00000001"),)),
         executed(ExeResult="1", FrozNo="DJ00000001", FrozState="2", FroAm="500000.00", UnfroDate="2026-11-24"),
         {"outcome": "released", "effective_from": "2026-11-24", "agency_reference": "DJ00000001"}),
    ],
    ids=["frozen", "partly", "queued", "no-holding", "renew-lapsed", "renewed", "released"],
)
def test_decode_control_answers_into_control_outcomes(codec, make_order, result, expected) -> None:
    envelope = codec.encode(make_order())
    answered = codec.decode(answer(envelope, {"Items": [result]}), envelope)
    assert answered.assets == []
    (outcome,) = ControlOutcomeSchema(many=True).load(answered.controls)
    assert (outcome["category"], outcome["identifier"]) == ("equity", COMPANY)
    for key, value in expected.items():
        assert answered.controls[0][key] == value, key


@pytest.mark.parametrize(
    ("result", "field"),
    [
        (executed(ExeResult="1", FrozState="1"), "Data.Items[0].FrozNo:"),
        (executed(ExeResult="2", FrozNo="DJ2", Ahead=[]), "Data.Items[0].QueuePos:"),
        (executed(ExeResult="3"), "Data.Items[0].Reason:"),
        (executed(ExeResult="1", FrozNo="DJ1", FrozState="3", Reason="x"), "Data.Items[0].LapseReason:"),
        (executed(ExeResult="4"), "Data.Items[0].ExeResult:"),
        (executed(ExeResult="1", FrozNo="DJ1", FrozState="1", FroAm=500000), "Data.Items[0].FroAm:"),
        (executed(ExeResult="1", FrozNo="DJ1", FrozState="1", FroTo="30/06/2029"), "Data.Items[0].FroTo:"),
    ],
)
def test_a_bad_control_answer_is_invalid_naming_the_field(codec, result, field) -> None:
    envelope = codec.encode(freeze_order())
    with pytest.raises(IncomingInvalid) as info:
        codec.decode(answer(envelope, {"Items": [result]}), envelope)
    assert type(info.value) is IncomingInvalid
    assert field in info.value.message


def test_a_control_answer_about_other_companies_is_invalid(codec) -> None:
    envelope = codec.encode(freeze_order())
    other = {"UniSCID": OTHER_COMPANY, "ExeResult": "3", "Reason": "x"}
    with pytest.raises(IncomingInvalid, match="answer covers companies"):
        codec.decode(answer(envelope, {"Items": [other]}), envelope)
    with pytest.raises(IncomingInvalid, match="answer covers companies"):
        codec.decode(answer(envelope, {"Items": []}), envelope)


# --- binding and errors ----------------------------------------------------------------


def test_answers_must_be_bound_to_the_request(codec) -> None:
    envelope = codec.encode(freeze_order())
    result = {"UniSCID": COMPANY, "ExeResult": "3", "Reason": "x"}
    with pytest.raises(AnswerNotBound, match="another"):
        codec.decode(answer(envelope, {"Items": [result]}, XXID="another"), envelope)
    with pytest.raises(AnswerNotBound, match="request hash"):
        codec.decode(answer(envelope, {"Items": [result]}, QQSHA256="0" * 64), envelope)


@pytest.mark.parametrize(
    ("status", "code", "error"),
    [(503, "1000", AgencyUnavailable), (500, None, AgencyUnavailable), (429, None, AgencyUnavailable),
     (400, "3000", AgencyRefused), (403, "2000", AgencyRefused), (404, None, AgencyRefused),
     (200, "1000", AgencyUnavailable), (200, "2000", AgencyRefused)],
)
def test_statuses_and_codes_map_to_adapter_errors(codec, status, code, error) -> None:
    envelope = codec.encode(order())
    body = b"" if code is None else json.dumps(
        {"Head": {"XXID": MESSAGE_ID, "RESPONSECODE": code, "RESPONSEINFO": "说明"}}, ensure_ascii=False).encode()
    with pytest.raises(error) as info:
        codec.decode(Reply(status, body), envelope)
    assert info.value.retryable is (error is AgencyUnavailable)
    if code is not None:
        assert f"{code}: 说明" in info.value.message
