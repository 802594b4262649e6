"""adapters.codecs.public_security against docs/agencies/public-security.md."""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import replace
from decimal import Decimal

import pytest

from adapters import CODECS
from adapters.codecs.public_security import PublicSecurityCodec
from adapters.errors import (
    AdapterError,
    AgencyRefused,
    AgencyUnavailable,
    AnswerNotBound,
    IncomingInvalid,
    MessageInvalid,
    OutgoingInvalid,
)
from adapters.interfaces import AgencyAnswer, DeliveryOrder, Envelope, Reply, SubjectRef
from schemas.canonical import AssetRecordSchema

MESSAGE_ID = "0b7f0c9e-3d0e-4a53-9d7e-1f7a1c1b2d3e"
PERSON_ID = "11010519491231002X"
ORG_ID = "91350100M000100Y43"
CASE = "(2024)浙0102执1234号"


def order(**changes) -> DeliveryOrder:
    base = DeliveryOrder(
        message_id=MESSAGE_ID,
        action="inquiry",
        categories=("identity", "vehicle", "whereabouts"),
        subject=SubjectRef(kind="person", name="张三", id_number=PERSON_ID),
        case_number=CASE,
        court_code="330102",
        officer="officer.wang",
        legal_basis_kind="assistance_notice",
        legal_basis_number="(2024)浙0102执1234号之一",
    )
    return replace(base, **changes)


@pytest.fixture
def codec() -> PublicSecurityCodec:
    return PublicSecurityCodec()


def body_of(envelope: Envelope) -> dict:
    return json.loads(envelope.body.decode("utf-8"))


# --- encode --------------------------------------------------------------------


def test_codec_is_registered_with_what_it_can_do() -> None:
    assert CODECS["public_security"] is PublicSecurityCodec
    assert PublicSecurityCodec.categories == ("identity", "vehicle", "whereabouts")
    assert PublicSecurityCodec.actions == ("inquiry", "seal", "release", "watch")
    assert PublicSecurityCodec.transports == ("rest",)


def test_encode_matches_the_contract(codec: PublicSecurityCodec) -> None:
    envelope = codec.encode(order())
    assert envelope.message_id == MESSAGE_ID
    assert envelope.operation == "inquiries"
    assert envelope.media_type == "application/json; charset=utf-8"
    assert envelope.headers == {}
    message = body_of(envelope)
    assert set(message) == {"Head", "Query"}
    head = message["Head"]
    assert re.fullmatch(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z", head.pop("CJSJ"))
    assert head == {
        "XXID": MESSAGE_ID,
        "FYDM": "330102",
        "CBR": "officer.wang",
        "AH": CASE,
        "WSLX": "assistance_notice",
        "WSH": "(2024)浙0102执1234号之一",
    }
    assert message["Query"] == {"XM": "张三", "ZJZL": "1", "ZJHM": PERSON_ID, "CXLB": ["HJ", "CL", "XZ"]}


def test_encode_writes_utf8_without_escapes(codec: PublicSecurityCodec) -> None:
    envelope = codec.encode(order())
    assert "张三".encode("utf-8") in envelope.body
    assert b"\\u" not in envelope.body


def test_encode_without_legal_basis_has_no_wslx_wsh(codec: PublicSecurityCodec) -> None:
    head = body_of(codec.encode(order(legal_basis_kind=None, legal_basis_number=None)))["Head"]
    assert "WSLX" not in head and "WSH" not in head


def test_encode_with_half_a_legal_basis_sends_neither(codec: PublicSecurityCodec) -> None:
    head = body_of(codec.encode(order(legal_basis_number=None)))["Head"]
    assert "WSLX" not in head and "WSH" not in head


@pytest.mark.parametrize(
    ("categories", "cxlb"),
    [
        (("identity",), ["HJ"]),
        (("vehicle",), ["CL"]),
        (("whereabouts",), ["XZ"]),
        (("whereabouts", "identity"), ["XZ", "HJ"]),
        (("deposit", "vehicle"), ["CL"]),
    ],
)
def test_categories_map_to_cxlb(codec: PublicSecurityCodec, categories, cxlb) -> None:
    assert body_of(codec.encode(order(categories=categories)))["Query"]["CXLB"] == cxlb


def test_organisation_id_type_is_8(codec: PublicSecurityCodec) -> None:
    subject = SubjectRef(kind="organization", name="某某有限公司", id_number=ORG_ID)
    query = body_of(codec.encode(order(subject=subject)))["Query"]
    assert (query["ZJZL"], query["ZJHM"]) == ("8", ORG_ID)


def test_amount_and_targets_are_not_sent(codec: PublicSecurityCodec) -> None:
    message = body_of(codec.encode(order(amount=Decimal("10.00"), targets=("x",))))
    assert "10.00" not in json.dumps(message)
    assert set(message["Query"]) == {"XM", "ZJZL", "ZJHM", "CXLB"}


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"subject": SubjectRef(kind="person", name="张" * 150, id_number=PERSON_ID)}, "Query.XM"),
        ({"subject": SubjectRef(kind="person", name="", id_number=PERSON_ID)}, "Query.XM"),
        ({"categories": ("deposit", "tax")}, "Query.CXLB"),
        ({"categories": ()}, "Query.CXLB"),
        ({"categories": ("vehicle", "vehicle")}, "Query.CXLB"),
        ({"subject": SubjectRef(kind="alien", name="X", id_number=PERSON_ID)}, "Query.ZJZL"),
        ({"subject": SubjectRef(kind="person", name="X", id_number="123")}, "Query.ZJHM"),
        ({"court_code": "3" * 33}, "Head.FYDM"),
        ({"officer": ""}, "Head.CBR"),
        ({"message_id": "m" * 65}, "Head.XXID"),
        ({"case_number": "x" * 65}, "Head.AH"),
    ],
)
def test_encode_refuses_an_order_that_breaks_the_format(codec: PublicSecurityCodec, changes, field) -> None:
    with pytest.raises(OutgoingInvalid) as info:
        codec.encode(order(**changes))
    assert info.value.retryable is False
    assert isinstance(info.value, MessageInvalid)
    assert info.value.message.startswith("inquiry breaks the agency format: ")
    assert f"{field}:" in info.value.message


# --- decode --------------------------------------------------------------------

HOUSEHOLD = {"GMSFHM": PERSON_ID, "XM": "张三", "XB": "2", "MZ": "01", "CSRQ": "19491231", "HJDZ": "北京市朝阳区建国路88号"}


def vehicle(**changes) -> dict:
    record = {"HPZL": "02", "HPHM": "京A12345", "CLSBDH": "LSVAU2A37N2183456", "SYR": "张三",
              "SFZMHM": PERSON_ID, "ZT": "A", "DYBJ": "0", "CCDJRQ": "2021-05-12"}
    record.update(changes)
    return record


WHEREABOUTS = {"LX": "hotel", "DD": "杭州市西湖区", "SJ": "2026-11-01T20:15:00Z"}


def answer(envelope: Envelope, data: dict | None = None, *, status: int = 200, drop_data: bool = False,
           **head_changes) -> Reply:
    head = {
        "XXID": envelope.message_id,
        "QQSHA256": hashlib.sha256(envelope.body).hexdigest(),
        "RESPONSECODE": "0000",
        "RESPONSEINFO": "成功",
        "FKSJ": "2026-11-23T10:00:01Z",
    }
    head.update(head_changes)
    if data is None:
        data = {"HJ": HOUSEHOLD, "CL": [vehicle(), vehicle(HPHM="京B54321", DYBJ="1", ZT="K")], "XZ": [WHEREABOUTS]}
    document = {"Head": head} if drop_data else {"Head": head, "Data": data}
    body = json.dumps(document, ensure_ascii=False).encode("utf-8")
    return Reply(status=status, body=body, media_type="application/json; charset=utf-8")


def test_decode_a_correct_answer(codec: PublicSecurityCodec) -> None:
    envelope = codec.encode(order())
    reply = answer(envelope)
    result = codec.decode(reply, envelope)
    assert isinstance(result, AgencyAnswer)
    assert result.message_id == MESSAGE_ID
    assert result.request_sha256 == hashlib.sha256(envelope.body).hexdigest()
    assert result.answered_at == "2026-11-23T10:00:01Z"
    assert result.raw == reply.body
    assert [a["category"] for a in result.assets] == ["identity", "vehicle", "vehicle", "whereabouts"]

    household, plain_car, sealed_car, stay = result.assets
    assert household["identifier"] == "1101**********002X"
    assert PERSON_ID not in household["identifier"]
    assert household["details"] == {"sex": "female", "ethnicity": "01", "birth_date": "19491231",
                                    "address": "北京市朝阳区建国路88号"}
    assert "born 1949-12-31" in household["description"]

    assert plain_car["identifier"] == "京A12345"
    assert plain_car["encumbrances"] == []
    assert plain_car["details"]["vin"] == "LSVAU2A37N2183456"
    assert sealed_car["identifier"] == "京B54321"
    assert sealed_car["encumbrances"] == ["mortgaged", "state K: sealed"]
    assert sealed_car["details"]["state"] == "K"

    assert stay["identifier"] == "hotel@2026-11-01T20:15:00Z"
    assert stay["details"] == {"kind": "hotel", "place": "杭州市西湖区", "time": "2026-11-01T20:15:00Z"}


def test_decoded_assets_load_as_canonical_asset_records(codec: PublicSecurityCodec) -> None:
    envelope = codec.encode(order())
    result = codec.decode(answer(envelope), envelope)
    loaded = AssetRecordSchema(many=True).load(result.assets)
    assert [a["category"] for a in loaded] == ["identity", "vehicle", "vehicle", "whereabouts"]


def test_decode_with_no_household_record_and_empty_lists(codec: PublicSecurityCodec) -> None:
    envelope = codec.encode(order())
    result = codec.decode(answer(envelope, {"HJ": None, "CL": [], "XZ": []}), envelope)
    assert result.assets == []


def test_decode_only_the_list_asked(codec: PublicSecurityCodec) -> None:
    envelope = codec.encode(order(categories=("vehicle",)))
    result = codec.decode(answer(envelope, {"CL": [vehicle(ZT="C")]}), envelope)
    assert [(a["category"], a["encumbrances"]) for a in result.assets] == [("vehicle", ["state C: stolen"])]


def test_answer_for_another_message_is_not_bound(codec: PublicSecurityCodec) -> None:
    envelope = codec.encode(order())
    with pytest.raises(AnswerNotBound) as info:
        codec.decode(answer(envelope, XXID="another-message"), envelope)
    assert "another-message" in info.value.message
    assert info.value.retryable is False
    assert info.value.raw  # kept for quarantine


def test_answer_for_other_request_bytes_is_not_bound(codec: PublicSecurityCodec) -> None:
    envelope = codec.encode(order())
    with pytest.raises(AnswerNotBound, match="request hash"):
        codec.decode(answer(envelope, QQSHA256=hashlib.sha256(envelope.body + b" ").hexdigest()), envelope)


def test_answer_for_a_re_encoded_request_is_not_bound(codec: PublicSecurityCodec) -> None:
    sent = codec.encode(order())
    other = replace(sent, body=sent.body.replace(b"officer.wang", b"officer.li"))
    with pytest.raises(AnswerNotBound):
        codec.decode(answer(other), sent)


def test_answer_listing_a_list_not_asked_is_invalid(codec: PublicSecurityCodec) -> None:
    envelope = codec.encode(order(categories=("identity",)))
    reply = answer(envelope, {"HJ": HOUSEHOLD, "CL": []})
    with pytest.raises(IncomingInvalid) as info:
        codec.decode(reply, envelope)
    assert type(info.value) is IncomingInvalid
    assert info.value.message == "answer lists ['CL', 'HJ'] but the inquiry asked for ['HJ']"
    assert info.value.raw == reply.body


def test_answer_missing_a_list_asked_is_invalid(codec: PublicSecurityCodec) -> None:
    envelope = codec.encode(order())
    with pytest.raises(IncomingInvalid, match="asked for"):
        codec.decode(answer(envelope, {"HJ": HOUSEHOLD, "CL": []}), envelope)


def test_bad_vehicle_state_names_the_field(codec: PublicSecurityCodec) -> None:
    envelope = codec.encode(order())
    reply = answer(envelope, {"HJ": HOUSEHOLD, "CL": [vehicle(ZT="Z")], "XZ": []})
    with pytest.raises(IncomingInvalid) as info:
        codec.decode(reply, envelope)
    assert type(info.value) is IncomingInvalid
    assert "Data.CL[0].ZT:" in info.value.message
    assert info.value.raw == reply.body


@pytest.mark.parametrize(
    ("data", "path"),
    [
        ({"HJ": {**HOUSEHOLD, "XB": "3"}, "CL": [], "XZ": []}, "Data.HJ.XB"),
        ({"HJ": HOUSEHOLD, "CL": [vehicle(), vehicle(CLSBDH="short")], "XZ": []}, "Data.CL[1].CLSBDH"),
        ({"HJ": HOUSEHOLD, "CL": [], "XZ": [{**WHEREABOUTS, "SJ": "2026-11-01 20:15"}]}, "Data.XZ[0].SJ"),
        ({"HJ": HOUSEHOLD, "CL": [], "XZ": [], "FC": []}, "Data.FC"),
    ],
)
def test_other_bad_fields_name_their_path(codec: PublicSecurityCodec, data, path) -> None:
    envelope = codec.encode(order())
    with pytest.raises(IncomingInvalid) as info:
        codec.decode(answer(envelope, data), envelope)
    assert f"{path}:" in info.value.message


@pytest.mark.parametrize("body", [b"<html>busy</html>", b"", b"\xff\xfe", b"[1, 2]", b"null"])
def test_non_json_or_non_object_answer_is_invalid(codec: PublicSecurityCodec, body: bytes) -> None:
    envelope = codec.encode(order())
    with pytest.raises(IncomingInvalid) as info:
        codec.decode(Reply(status=200, body=body), envelope)
    assert type(info.value) is IncomingInvalid
    assert info.value.raw == body


def test_http_503_is_unavailable_and_retryable(codec: PublicSecurityCodec) -> None:
    envelope = codec.encode(order())
    body = json.dumps({"Head": {"XXID": MESSAGE_ID, "RESPONSECODE": "1000", "RESPONSEINFO": "系统繁忙"}},
                      ensure_ascii=False).encode()
    with pytest.raises(AgencyUnavailable) as info:
        codec.decode(Reply(status=503, body=body), envelope)
    assert info.value.retryable is True
    assert "HTTP 503" in info.value.message
    assert "code 1000: 系统繁忙" in info.value.message


def test_http_503_without_a_body_is_unavailable(codec: PublicSecurityCodec) -> None:
    envelope = codec.encode(order())
    with pytest.raises(AgencyUnavailable) as info:
        codec.decode(Reply(status=503, body=b""), envelope)
    assert info.value.retryable is True


def test_http_400_with_3000_is_refused_with_the_info(codec: PublicSecurityCodec) -> None:
    envelope = codec.encode(order())
    body = json.dumps({"Head": {"XXID": MESSAGE_ID, "RESPONSECODE": "3000", "RESPONSEINFO": "Query.ZJHM: 证件号码格式错误"}},
                      ensure_ascii=False).encode()
    with pytest.raises(AgencyRefused) as info:
        codec.decode(Reply(status=400, body=body), envelope)
    assert info.value.retryable is False
    assert "HTTP 400" in info.value.message
    assert "code 3000: Query.ZJHM: 证件号码格式错误" in info.value.message


def test_http_403_is_refused(codec: PublicSecurityCodec) -> None:
    envelope = codec.encode(order())
    body = json.dumps({"Head": {"RESPONSECODE": "2000", "RESPONSEINFO": "court not recognised"}}).encode()
    with pytest.raises(AgencyRefused, match="code 2000: court not recognised"):
        codec.decode(Reply(status=403, body=body), envelope)


def test_http_200_with_1000_is_unavailable(codec: PublicSecurityCodec) -> None:
    envelope = codec.encode(order())
    with pytest.raises(AgencyUnavailable) as info:
        codec.decode(answer(envelope, {}, RESPONSECODE="1000", RESPONSEINFO="系统繁忙"), envelope)
    assert info.value.retryable is True
    assert "系统繁忙" in info.value.message


def test_http_200_with_other_code_is_refused(codec: PublicSecurityCodec) -> None:
    envelope = codec.encode(order())
    with pytest.raises(AgencyRefused, match="code 2000: 无权查询"):
        codec.decode(answer(envelope, {}, RESPONSECODE="2000", RESPONSEINFO="无权查询"), envelope)


def test_http_200_with_1000_and_no_data_is_unavailable(codec: PublicSecurityCodec) -> None:
    envelope = codec.encode(order())
    with pytest.raises(AgencyUnavailable):
        codec.decode(answer(envelope, RESPONSECODE="1000", RESPONSEINFO="系统繁忙", drop_data=True), envelope)


def test_every_decode_error_is_an_adapter_error(codec: PublicSecurityCodec) -> None:
    envelope = codec.encode(order())
    replies = [Reply(500, b""), Reply(404, b"not found"), Reply(200, b"{"), answer(envelope, XXID="x")]
    for reply in replies:
        with pytest.raises(AdapterError):
            codec.decode(reply, envelope)
