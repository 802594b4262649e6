"""adapters.codecs.bank against docs/agencies/bank.md. Answers are written out
here by hand (not by the sandbox), so the codec is checked against the contract."""

from __future__ import annotations

import time
from dataclasses import replace
from datetime import date
from decimal import Decimal

import pytest
from lxml import etree

from adapters import CODECS
from adapters.codecs.bank import BankCodec
from adapters.errors import (
    AdapterError,
    AgencyRefused,
    AgencyUnavailable,
    AnswerNotBound,
    IncomingInvalid,
    OutgoingInvalid,
)
from adapters.interfaces import ControlLine, DeliveryOrder, Envelope, Reply, SubjectRef
from schemas import xml
from schemas.canonical import AssetRecordSchema, ControlOutcomeSchema
from gateway.timeutil import court_today

NS = "urn:enforcement-gateway:bank:v1"
MESSAGE_ID = "0b7f0c9e-3d0e-4a53-9d7e-1f7a1c1b2d3e"
PERSON_ID = "11010519491231002X"
ACCOUNT = "6222021234567890123"
CASE = "(2024)浙0102执1234号"


def order(**changes) -> DeliveryOrder:
    base = DeliveryOrder(
        court_date=court_today(),
        message_id=MESSAGE_ID,
        action="inquiry",
        categories=("deposit", "wealth_product"),
        subject=SubjectRef(kind="person", name="张三", id_number=PERSON_ID),
        case_number=CASE,
        court_code="330102",
        officer="officer.wang",
        legal_basis_kind="assistance_notice",
        legal_basis_number="(2024)浙0102执1234号之一",
    )
    return replace(base, **changes)


def control(action: str, **line_changes) -> DeliveryOrder:
    line = replace(ControlLine(ACCOUNT, Decimal("5000"), date(2027, 6, 30), "DJ000100000001"), **line_changes)
    return order(action=action, categories=("deposit",), lines=(line,), court_account="6222999900001111")


@pytest.fixture
def codec() -> BankCodec:
    return BankCodec()


def find(root: etree._Element, path: str) -> str | None:
    return root.findtext("/".join(f"{{{NS}}}{step}" for step in path.split("/")))


def answer(envelope: Envelope, data: str = "", *, root: str | None = None, code: str = "0000", info: str = "成功",
           key: str | None = None, digest: str | None = None, kind: str | None = None) -> Reply:
    request = xml.parse(envelope.body)
    is_control = etree.QName(request).localname == "ControlRequest"
    root = root or ("ControlAnswer" if is_control else "InquiryAnswer")
    key = envelope.message_id if key is None else key
    digest = xml.digest(request) if digest is None else digest
    head = "".join(
        f"<{name}>{value}</{name}>"
        for name, value in (("BDHM", key), ("XZ", kind or ("2" if is_control else "1")), ("QQSHA256", digest),
                            ("RESPONSECODE", code), ("RESPONSEINFO", info), ("FKSJ", "2026-11-23T10:00:05Z"))
        if value != ""
    )
    data_part = f"<Data>{data}</Data>" if data is not None else ""
    return Reply(200, f'<{root} xmlns="{NS}"><Head>{head}</Head>{data_part}</{root}>'.encode("utf-8"))


DEPOSIT = (
    f"<CKZH><ZH>{ACCOUNT}</ZH><ZHZT>1</ZHZT><ZHLX>01</ZHLX><KHWD>杭州西湖支行</KHWD><KHRQ>2015-03-02</KHRQ>"
    "<BZ>CNY</BZ><YE>12000.50</YE><KYYE>7000.50</KYYE>"
    "<DJ><DJJG>北京市朝阳区人民法院</DJJG><DJWH>(2025)执1001号</DJWH><DJJE>5000.00</DJJE><DJJZRQ>2027-03-01</DJJZRQ></DJ></CKZH>"
)
EXEMPT = (
    "<CKZH><ZH>6222020000000000001</ZH><ZHZT>1</ZHZT><ZHLX>11</ZHLX><KHWD>杭州西湖支行</KHWD><KHRQ>2018-01-02</KHRQ>"
    "<BZ>CNY</BZ><YE>800.00</YE><KYYE>800.00</KYYE></CKZH>"
)
PRODUCT = "<LCCP><CPBH>LC00010001</CPBH><CPMC>季季盈</CPMC><BZ>CNY</BZ><JE>100000.00</JE><DQRQ>2027-12-31</DQRQ></LCCP>"


# --- encode --------------------------------------------------------------------


def test_codec_is_registered_with_what_it_can_do() -> None:
    assert CODECS["bank"] is BankCodec
    assert BankCodec.action_categories == {
        "inquiry": ("deposit", "wealth_product"), "freeze": ("deposit",), "renew": ("deposit",),
        "unfreeze": ("deposit",), "deduct": ("deposit",),
    }
    assert set(BankCodec.actions) == {"inquiry", "freeze", "renew", "unfreeze", "deduct"}
    assert set(BankCodec.categories) == {"deposit", "wealth_product"}
    assert BankCodec.transports == ("soap", "sftp")


def test_inquiry_matches_the_contract(codec: BankCodec) -> None:
    envelope = codec.encode(order())
    assert envelope.operation == "Inquire" and envelope.message_id == MESSAGE_ID
    assert envelope.media_type.startswith("application/xml")
    assert b"\n" not in envelope.body and not envelope.body.startswith(b"<?xml")
    root = xml.parse_valid(envelope.body, "bank-v1")
    assert etree.QName(root) == etree.QName(NS, "InquiryRequest")
    assert find(root, "Head/BDHM") == MESSAGE_ID and find(root, "Head/XZ") == "1"
    assert (find(root, "Head/FYDM"), find(root, "Head/CBR"), find(root, "Head/AH")) == ("330102", "officer.wang", CASE)
    assert (find(root, "Head/WSLX"), find(root, "Head/WSH")) == ("assistance_notice", "(2024)浙0102执1234号之一")
    assert (find(root, "Data/XM"), find(root, "Data/ZJLX"), find(root, "Data/DSRZJHM")) == ("张三", "1", PERSON_ID)
    assert [e.text for e in root.iter(f"{{{NS}}}CXNR")] == ["CK", "LC"]


def test_inquiry_for_deposits_only_and_for_an_organisation(codec: BankCodec) -> None:
    subject = SubjectRef(kind="organization", name="杭州某某建材有限公司", id_number="91350100M000100Y43")
    root = xml.parse(codec.encode(order(categories=("deposit",), subject=subject)).body)
    assert [e.text for e in root.iter(f"{{{NS}}}CXNR")] == ["CK"]
    assert find(root, "Data/ZJLX") == "8"


@pytest.mark.parametrize(
    ("action", "measure"), [("freeze", "01"), ("renew", "02"), ("unfreeze", "04"), ("deduct", "06")]
)
def test_control_lines_match_the_contract(codec: BankCodec, action: str, measure: str) -> None:
    envelope = codec.encode(control(action))
    assert envelope.operation == "Control"
    root = xml.parse_valid(envelope.body, "bank-v1")
    assert find(root, "Head/XZ") == "2"
    assert find(root, "Data/KZ/KZCS") == measure
    assert (find(root, "Data/KZ/ZH"), find(root, "Data/KZ/BZ"), find(root, "Data/KZ/JE")) == (ACCOUNT, "CNY", "5000.00")
    assert find(root, "Data/KZ/CDH") == "(2024)浙0102执1234号之一"
    assert find(root, "Data/KZ/YDJBH") == "DJ000100000001"
    assert (find(root, "Data/KZ/JSRQ") == "2027-06-30") == (action in ("freeze", "renew"))
    assert (find(root, "Data/KZ/FYSKZH") == "6222999900001111") == (action == "deduct")


def test_freeze_without_an_amount_asks_for_the_whole_balance(codec: BankCodec) -> None:
    root = xml.parse(codec.encode(control("freeze", amount=None, original_reference=None)).body)
    assert find(root, "Data/KZ/JE") is None and find(root, "Data/KZ/YDJBH") is None


@pytest.mark.parametrize(
    ("the_order", "words"),
    [
        (order(action="freeze", lines=()), "a freeze order needs lines"),
        (control("freeze", until=None), "lines[0].until: required for freeze"),
        (control("renew", original_reference=None), "lines[0].original_reference: required for renew"),
        (control("unfreeze", original_reference=None), "original_reference: required for unfreeze"),
        (replace(control("deduct"), court_account=None), "court_account: required for deduct"),
        (replace(control("freeze"), legal_basis_number=None), "legal_basis.number: required for freeze"),
        (order(action="seal"), "action 'seal' is not one a bank takes"),
        (order(categories=("vehicle",)), "categories ['vehicle'] are not held by banks"),
        (control("freeze", identifier="not-an-account"), "ZH"),
        (control("freeze", amount=Decimal("-1")), "JE"),
        (order(subject=SubjectRef("person", "张三", "123")), "DSRZJHM"),
        (order(court_code="330 102"), "FYDM"),
        (order(message_id="x" * 65), "BDHM"),
        (order(subject=SubjectRef("robot", "R2", PERSON_ID)), "subject.kind"),
    ],
)
def test_encode_refuses_an_order_that_breaks_the_format(codec: BankCodec, the_order: DeliveryOrder, words: str) -> None:
    with pytest.raises(OutgoingInvalid) as info:
        codec.encode(the_order)
    assert words in info.value.message


# --- decode --------------------------------------------------------------------


def test_inquiry_answer_maps_to_canonical_assets(codec: BankCodec) -> None:
    envelope = codec.encode(order())
    decoded = codec.decode(answer(envelope, DEPOSIT + EXEMPT + PRODUCT), envelope)
    assert decoded.message_id == MESSAGE_ID
    assert decoded.request_sha256 == xml.digest(xml.parse(envelope.body))
    assert decoded.answered_at == "2026-11-23T10:00:05Z"
    deposit, exempt, product = decoded.assets
    assert deposit["category"] == "deposit" and deposit["identifier"] == ACCOUNT
    assert deposit["balance"] == "7000.50"  # the available balance: what can still be frozen
    assert deposit["details"]["balance"] == "12000.50" and deposit["details"]["available_balance"] == "7000.50"
    assert deposit["details"]["account_kind"] == "01" and deposit["details"]["exempt"] is False
    assert deposit["details"]["status"] == "normal" and deposit["details"]["currency"] == "CNY"
    assert deposit["encumbrances"] == ["frozen by 北京市朝阳区人民法院 under (2025)执1001号: 5000.00 until 2027-03-01"]
    assert exempt["details"]["exempt"] is True and "exempt" in exempt["description"]
    assert product["category"] == "wealth_product" and product["value"] == "100000.00"
    assert product["details"]["maturity"] == "2027-12-31"
    for asset in decoded.assets:
        AssetRecordSchema().load(asset)
    assert decoded.controls == []


def test_inquiry_answer_with_no_account(codec: BankCodec) -> None:
    envelope = codec.encode(order())
    assert codec.decode(answer(envelope, "", info="查无开户信息"), envelope).assets == []


def test_answer_listing_products_not_asked_is_invalid(codec: BankCodec) -> None:
    envelope = codec.encode(order(categories=("deposit",)))
    with pytest.raises(IncomingInvalid, match=r"lists \['LC'\]"):
        codec.decode(answer(envelope, DEPOSIT + PRODUCT), envelope)


def result(measure: str, state: str = "1", extra: str = "") -> str:
    return f"<KZJG><KZCS>{measure}</KZCS><ZH>{ACCOUNT}</ZH><KZZT>{state}</KZZT>{extra}</KZJG>"


@pytest.mark.parametrize(
    ("action", "line", "expected"),
    [
        ("freeze", result("01", extra="<KSRQ>2026-11-23</KSRQ><JSRQ>2027-06-30</JSRQ><DJXE>5000.00</DJXE><SKJE>5000.00</SKJE><DJBH>DJ1</DJBH>"),
         {"outcome": "controlled", "amount_requested": "5000.00", "amount_controlled": "5000.00", "until": "2027-06-30", "agency_reference": "DJ1"}),
        ("freeze", result("01", extra="<DJXE>5000.00</DJXE><SKJE>1200.00</SKJE><CESKJE>3800.00</CESKJE>"
                                      "<ZQDJ><DJJG>某法院</DJJG><DJWH>(2025)执1号</DJWH><DJJE>300.00</DJJE></ZQDJ><DJBH>DJ2</DJBH>"),
         {"outcome": "partly_controlled", "amount_controlled": "1200.00", "ahead": ["某法院 (2025)执1号: 300.00"]}),
        ("freeze", result("01", extra="<DJXE>5000.00</DJXE><SKJE>0.00</SKJE>"
                                      "<ZQDJ><DJJG>某法院</DJJG><DJWH>(2025)执1号</DJWH><DJJE>300.00</DJJE></ZQDJ><DJBH>DJ3</DJBH>"),
         {"outcome": "queued", "queue_position": 2}),
        ("freeze", result("01", "2", "<WNKZYY>依法不得冻结</WNKZYY>"), {"outcome": "not_controlled", "reason": "依法不得冻结"}),
        ("renew", result("02", extra="<JSRQ>2028-06-30</JSRQ><SKJE>5000.00</SKJE><DJBH>DJ1</DJBH>"), {"outcome": "controlled", "until": "2028-06-30"}),
        ("unfreeze", result("04", extra="<SKJE>5000.00</SKJE><DJBH>DJ1</DJBH>"), {"outcome": "released", "amount_controlled": "5000.00"}),
        ("deduct", result("06", extra="<DJXE>5000.00</DJXE><SKJE>5000.00</SKJE><DJBH>KH1</DJBH>"), {"outcome": "deducted", "agency_reference": "KH1"}),
        ("deduct", result("06", "2", "<WNKZYY>冻结金额为零</WNKZYY>"), {"outcome": "not_controlled"}),
    ],
)
def test_control_answers_map_to_control_outcomes(codec: BankCodec, action: str, line: str, expected: dict) -> None:
    envelope = codec.encode(control(action))
    decoded = codec.decode(answer(envelope, line), envelope)
    [outcome] = decoded.controls
    assert outcome["category"] == "deposit" and outcome["identifier"] == ACCOUNT
    for key, value in expected.items():
        assert outcome[key] == value, key
    ControlOutcomeSchema().load(outcome)
    assert decoded.assets == []


def test_control_answer_must_answer_every_line_asked(codec: BankCodec) -> None:
    envelope = codec.encode(control("freeze"))
    with pytest.raises(IncomingInvalid, match="do not match the lines asked"):
        codec.decode(answer(envelope, ""), envelope)
    with pytest.raises(IncomingInvalid, match="do not match the lines asked"):
        codec.decode(answer(envelope, result("04")), envelope)


# --- binding and errors ---------------------------------------------------------------------


def test_answer_for_another_key_is_not_bound(codec: BankCodec) -> None:
    envelope = codec.encode(order())
    with pytest.raises(AnswerNotBound, match="not '0b7f0c9e"):
        codec.decode(answer(envelope, DEPOSIT, key="another-message"), envelope)


def test_answer_for_another_request_digest_is_not_bound(codec: BankCodec) -> None:
    envelope = codec.encode(order())
    other = codec.encode(order(officer="officer.li"))  # same key, other bytes
    reply = answer(other, DEPOSIT)
    with pytest.raises(AnswerNotBound, match="QQSHA256") as info:
        codec.decode(reply, envelope)
    assert info.value.raw == reply.body


def test_answer_without_key_or_digest_is_not_bound(codec: BankCodec) -> None:
    envelope = codec.encode(order())
    with pytest.raises(AnswerNotBound, match="Head.BDHM is missing"):
        codec.decode(answer(envelope, DEPOSIT, key=""), envelope)
    with pytest.raises(AnswerNotBound, match="Head.QQSHA256 is missing"):
        codec.decode(answer(envelope, DEPOSIT, digest=""), envelope)


def test_answer_of_the_other_kind_is_invalid(codec: BankCodec) -> None:
    envelope = codec.encode(order())
    with pytest.raises(IncomingInvalid, match="answer is a ControlAnswer but the request was a InquiryRequest"):
        codec.decode(answer(envelope, "", root="ControlAnswer", kind="2"), envelope)
    with pytest.raises(IncomingInvalid, match="Head.XZ is 2"):
        codec.decode(answer(envelope, "", kind="2"), envelope)


@pytest.mark.parametrize(("code", "error"), [("1000", AgencyUnavailable), ("2040", AgencyUnavailable),
                                             ("2000", AgencyRefused), ("3000", AgencyRefused), ("3010", AgencyRefused)])
def test_error_codes(codec: BankCodec, code: str, error: type) -> None:
    envelope = codec.encode(order())
    with pytest.raises(error) as info:
        codec.decode(answer(envelope, None, code=code, info="原因说明", key="", digest=""), envelope)
    assert f"code {code}: 原因说明" in info.value.message


def test_error_answer_for_another_key_is_not_bound(codec: BankCodec) -> None:
    envelope = codec.encode(order())
    with pytest.raises(AnswerNotBound):
        codec.decode(answer(envelope, None, code="1000", key="someone-else"), envelope)


@pytest.mark.parametrize(("status", "error"), [(503, AgencyUnavailable), (400, AgencyRefused)])
def test_non_2xx_reply_statuses(codec: BankCodec, status: int, error: type) -> None:
    envelope = codec.encode(order())
    with pytest.raises(error):
        codec.decode(Reply(status, b""), envelope)


def test_invalid_answer_names_the_first_problem_and_its_line(codec: BankCodec) -> None:
    envelope = codec.encode(order())
    reply = answer(envelope, DEPOSIT.replace("<YE>12000.50</YE>", "<YE>lots</YE>"))
    pretty = Reply(200, etree.tostring(etree.fromstring(reply.body), pretty_print=True))
    with pytest.raises(IncomingInvalid) as info:
        codec.decode(pretty, envelope)
    line = next(n for n, text in enumerate(pretty.body.decode().splitlines(), start=1) if "<YE>" in text)
    assert f"line {line}:" in info.value.message and "YE" in info.value.message
    assert info.value.raw == pretty.body


@pytest.mark.parametrize(
    "body",
    [
        b'<!DOCTYPE a [<!ENTITY x SYSTEM "file:///etc/passwd">]><InquiryAnswer xmlns="urn:enforcement-gateway:bank:v1">&x;</InquiryAnswer>',
        b'<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">'
        b'<!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;"><!ENTITY lol4 "&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;">'
        b'<!ENTITY lol5 "&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;">]><InquiryAnswer>&lol5;</InquiryAnswer>',
        b'<!DOCTYPE InquiryAnswer SYSTEM "http://127.0.0.1:9/bank.dtd"><InquiryAnswer/>',
        b"not xml at all",
    ],
)
def test_dtd_entities_and_garbage_are_refused_without_expansion(codec: BankCodec, body: bytes) -> None:
    envelope = codec.encode(order())
    started = time.monotonic()
    with pytest.raises(IncomingInvalid) as info:
        codec.decode(Reply(200, body), envelope)
    assert time.monotonic() - started < 1
    assert info.value.raw == body
    assert "root:" not in info.value.message


def test_every_decode_error_is_an_adapter_error(codec: BankCodec) -> None:
    envelope = codec.encode(order())
    for reply in (Reply(200, b"<x/>"), Reply(500, b""), answer(envelope, None, code="2000")):
        with pytest.raises(AdapterError):
            codec.decode(reply, envelope)
