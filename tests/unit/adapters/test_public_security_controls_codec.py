"""PublicSecurityCodec controls (vehicle seal and release, watch) against
docs/agencies/public-security.md, "Controls"."""

from __future__ import annotations

import hashlib
import json
from dataclasses import replace
from datetime import date

import pytest

from adapters.codecs.public_security import PublicSecurityCodec
from adapters.errors import AgencyRefused, AnswerNotBound, IncomingInvalid, OutgoingInvalid
from adapters.interfaces import ControlLine, DeliveryOrder, Envelope, Reply, SubjectRef
from schemas.canonical import ControlOutcomeSchema

MESSAGE_ID = "9a3e4d6c-1f2b-4c3d-8e9f-0a1b2c3d4e5f"
PERSON_ID = "11010519491231002X"
PLATE, OTHER_PLATE = "京A12345", "京B54321"
UNTIL = date(2028, 5, 31)


def order(action: str = "seal", *lines: ControlLine, **changes) -> DeliveryOrder:
    if not lines and action == "seal":
        lines = (ControlLine(PLATE, until=UNTIL),)
    if not lines and action == "release":
        lines = (ControlLine(PLATE, original_reference="CF00000001"),)
    base = DeliveryOrder(
        message_id=MESSAGE_ID, action=action, categories=("whereabouts",) if action == "watch" else ("vehicle",),
        subject=SubjectRef(kind="person", name="张三", id_number=PERSON_ID), case_number="(2024)浙0102执1234号",
        court_code="330102", officer="officer.wang", legal_basis_kind="ruling", legal_basis_number="(2024)浙0102执1234号之一",
        lines=lines,
    )
    return replace(base, **changes)


@pytest.fixture
def codec() -> PublicSecurityCodec:
    return PublicSecurityCodec()


def body_of(envelope: Envelope) -> dict:
    return json.loads(envelope.body.decode("utf-8"))


def answer(envelope: Envelope, data: dict, **head_changes) -> Reply:
    head = {"XXID": envelope.message_id, "QQSHA256": hashlib.sha256(envelope.body).hexdigest(),
            "RESPONSECODE": "0000", "RESPONSEINFO": "成功", "FKSJ": "2026-11-23T10:00:01Z", **head_changes}
    return Reply(200, json.dumps({"Head": head, "Data": data}, ensure_ascii=False).encode())


def test_action_categories_for_controls() -> None:
    assert PublicSecurityCodec.action_categories == {
        "inquiry": ("identity", "vehicle", "whereabouts"), "seal": ("vehicle",), "release": ("vehicle",),
        "watch": ("whereabouts",)}


def test_encode_a_seal_release_and_watch(codec) -> None:
    seal = codec.encode(order("seal", ControlLine(PLATE, until=UNTIL), ControlLine(OTHER_PLATE, until=UNTIL)))
    assert seal.operation == "controls"
    message = body_of(seal)
    assert message["Head"]["WSH"] == "(2024)浙0102执1234号之一"
    assert message["Control"] == {"KZLX": "CF", "XM": "张三", "ZJZL": "1", "ZJHM": PERSON_ID,
                                  "CL": [{"HPHM": PLATE, "JZRQ": "2028-05-31"}, {"HPHM": OTHER_PLATE, "JZRQ": "2028-05-31"}]}
    release = body_of(codec.encode(order("release")))["Control"]
    assert (release["KZLX"], release["CL"]) == ("JF", [{"HPHM": PLATE, "YCFBH": "CF00000001"}])
    watch = body_of(codec.encode(order("watch")))["Control"]
    assert watch == {"KZLX": "BK", "XM": "张三", "ZJZL": "1", "ZJHM": PERSON_ID}
    until = body_of(codec.encode(order("watch", ControlLine("whereabouts", until=UNTIL))))["Control"]
    assert until["BKJZRQ"] == "2028-05-31" and "CL" not in until


@pytest.mark.parametrize(
    ("make", "field"),
    [
        (lambda: order("seal", ControlLine(PLATE)), "Control.CL[0].JZRQ"),
        (lambda: order("seal", ControlLine(PLATE, until=UNTIL), ControlLine(PLATE, until=UNTIL)), "Control.CL[1].HPHM"),
        (lambda: order("seal", ControlLine("京" + "A" * 20, until=UNTIL)), "Control.CL[0].HPHM"),
        (lambda: replace(order("seal"), lines=()), "Control.CL"),
        (lambda: order("release", ControlLine(PLATE)), "Control.CL[0].YCFBH"),
        (lambda: order("seal", legal_basis_kind=None, legal_basis_number=None), "Head.WSH"),
        (lambda: order("watch", legal_basis_kind=None, legal_basis_number=None), "Head.WSH"),
    ],
)
def test_encode_refuses_a_control_that_breaks_the_format(codec, make, field) -> None:
    with pytest.raises(OutgoingInvalid) as info:
        codec.encode(make())
    assert f"{field}:" in info.value.message


def test_encode_refuses_an_action_the_bureau_does_not_take(codec) -> None:
    with pytest.raises(OutgoingInvalid, match="does not take action 'freeze'"):
        codec.encode(order("freeze"))


AHEAD = {"CFFY": "310115", "WSH": "(2025)执保120号", "JZRQ": "2028-01-10"}


@pytest.mark.parametrize(
    ("action", "result", "expected"),
    [
        ("seal", {"HPHM": PLATE, "ZXJG": "1", "CFBH": "CF00000001", "ZT": "K", "QSRQ": "2026-11-23", "JZRQ": "2028-05-31"},
         {"outcome": "controlled", "agency_reference": "CF00000001", "effective_from": "2026-11-23", "until": "2028-05-31"}),
        ("seal", {"HPHM": PLATE, "ZXJG": "2", "CFBH": "CF00000002", "ZT": "K", "JZRQ": "2028-05-31", "LHXH": 1, "QX": [AHEAD]},
         {"outcome": "queued", "queue_position": 1, "ahead": ["court 310115, (2025)执保120号, until 2028-01-10"]}),
        ("seal", {"HPHM": PLATE, "ZXJG": "3", "YY": "该车辆未登记在被执行人名下"},
         {"outcome": "not_controlled", "reason": "该车辆未登记在被执行人名下", "agency_reference": None}),
        ("release", {"HPHM": PLATE, "ZXJG": "1", "CFBH": "CF00000001", "ZT": "A", "JFRQ": "2026-11-24"},
         {"outcome": "released", "effective_from": "2026-11-24", "agency_reference": "CF00000001"}),
        ("release", {"HPHM": PLATE, "ZXJG": "3", "CFBH": "CF00000001", "YY": "非本院查封"},
         {"outcome": "not_controlled", "reason": "非本院查封"}),
    ],
    ids=["sealed", "queued", "not-registered", "released", "other-court"],
)
def test_decode_vehicle_control_answers(codec, action, result, expected) -> None:
    envelope = codec.encode(order(action))
    answered = codec.decode(answer(envelope, {"CL": [result]}), envelope)
    assert answered.assets == []
    (loaded,) = ControlOutcomeSchema(many=True).load(answered.controls)
    assert (loaded["category"], loaded["identifier"]) == ("vehicle", PLATE)
    for key, value in expected.items():
        assert answered.controls[0][key] == value, key


def test_decode_a_watch(codec) -> None:
    envelope = codec.encode(order("watch"))
    answered = codec.decode(answer(envelope, {"BK": {"BKBH": "BK00000001", "QSRQ": "2026-11-23", "JZRQ": "2027-11-23"}}), envelope)
    assert answered.controls == [{"category": "whereabouts", "identifier": "BK00000001", "outcome": "watching",
                                  "effective_from": "2026-11-23", "until": "2027-11-23", "agency_reference": "BK00000001"}]
    ControlOutcomeSchema(many=True).load(answered.controls)


@pytest.mark.parametrize(
    ("action", "data", "problem"),
    [
        ("seal", {"CL": [{"HPHM": OTHER_PLATE, "ZXJG": "3", "YY": "x"}]}, "answer covers vehicles"),
        ("seal", {"CL": []}, "answer covers vehicles"),
        ("seal", {"BK": {"BKBH": "BK1", "QSRQ": "2026-11-23", "JZRQ": "2027-11-23"}}, "answer covers vehicles"),
        ("watch", {"CL": []}, "has no BK"),
        ("seal", {"CL": [{"HPHM": PLATE, "ZXJG": "1"}]}, "Data.CL[0].CFBH:"),
        ("seal", {"CL": [{"HPHM": PLATE, "ZXJG": "2", "CFBH": "CF2", "QX": [AHEAD]}]}, "Data.CL[0].LHXH:"),
        ("seal", {"CL": [{"HPHM": PLATE, "ZXJG": "3"}]}, "Data.CL[0].YY:"),
        ("seal", {"CL": [{"HPHM": PLATE, "ZXJG": "1", "CFBH": "CF1", "ZT": "Z"}]}, "Data.CL[0].ZT:"),
        ("seal", {"CL": [{"HPHM": PLATE, "ZXJG": "2", "CFBH": "CF2", "LHXH": "1", "QX": [AHEAD]}]}, "Data.CL[0].LHXH:"),
        ("seal", {"CL": [], "BK": {"BKBH": "BK1", "QSRQ": "2026-11-23", "JZRQ": "2027-11-23"}}, "Data:"),
        ("watch", {"BK": {"BKBH": "BK1", "QSRQ": "2026-11-23"}}, "Data.BK.JZRQ:"),
    ],
)
def test_decode_refuses_a_bad_control_answer(codec, action, data, problem) -> None:
    envelope = codec.encode(order(action))
    with pytest.raises(IncomingInvalid) as info:
        codec.decode(answer(envelope, data), envelope)
    assert type(info.value) is IncomingInvalid
    assert problem in info.value.message


def test_control_answers_must_be_bound(codec) -> None:
    envelope = codec.encode(order("seal"))
    data = {"CL": [{"HPHM": PLATE, "ZXJG": "3", "YY": "x"}]}
    with pytest.raises(AnswerNotBound):
        codec.decode(answer(envelope, data, XXID="other"), envelope)
    with pytest.raises(AnswerNotBound):
        codec.decode(answer(envelope, data, QQSHA256="f" * 64), envelope)


def test_control_refusal_is_refused(codec) -> None:
    envelope = codec.encode(order("seal"))
    body = json.dumps({"Head": {"XXID": MESSAGE_ID, "RESPONSECODE": "3000", "RESPONSEINFO": "Control.CL[0].JZRQ: required"}}).encode()
    with pytest.raises(AgencyRefused, match="Control.CL"):
        codec.decode(Reply(400, body), envelope)
