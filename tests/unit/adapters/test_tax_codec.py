"""adapters.codecs.tax against docs/agencies/tax.md, with answers written here by hand."""

from __future__ import annotations

from dataclasses import replace

import pytest

from schemas.identifiers import mask_id_number
from lxml import etree

from adapters import CODECS
from adapters.codecs.tax import TaxCodec
from adapters.errors import AgencyRefused, AgencyUnavailable, AnswerNotBound, IncomingInvalid, OutgoingInvalid
from adapters.interfaces import ControlLine, DeliveryOrder, Envelope, Reply, SubjectRef
from schemas import xml
from schemas.canonical import AssetRecordSchema

NS = "urn:enforcement-gateway:tax:v1"
PERSON_ID = "330102198703151157"
UNIT = "330102001001GB00012F00010001"
OTHER_UNIT = "330102001001GB00013F00020002"


def order(**changes) -> DeliveryOrder:
    base = DeliveryOrder(
        message_id="tax-message-1",
        action="inquiry",
        categories=("tax",),
        subject=SubjectRef(kind="person", name="张三", id_number=PERSON_ID),
        case_number="(2024)浙0102执1234号",
        court_code="330102",
        officer="officer.wang",
    )
    return replace(base, **changes)


def valuation(*units: str) -> DeliveryOrder:
    return order(action="valuation", categories=("real_estate",), lines=tuple(ControlLine(u) for u in units))


@pytest.fixture
def codec() -> TaxCodec:
    return TaxCodec()


def answer(envelope: Envelope, data: str | None, *, code: str = "0000", key: str | None = None) -> Reply:
    request = xml.parse(envelope.body)
    is_valuation = etree.QName(request).localname == "ValuationRequest"
    root = "ValuationAnswer" if is_valuation else "InquiryAnswer"
    head = (f"<BDHM>{key or envelope.message_id}</BDHM><XZ>{'3' if is_valuation else '1'}</XZ>"
            f"<QQSHA256>{xml.digest(request)}</QQSHA256><RESPONSECODE>{code}</RESPONSECODE>"
            f"<RESPONSEINFO>说明</RESPONSEINFO><FKSJ>2026-11-23T10:00:05Z</FKSJ>")
    data_part = "" if data is None else f"<Data>{data}</Data>"
    return Reply(200, f'<{root} xmlns="{NS}"><Head>{head}</Head>{data_part}</{root}>'.encode("utf-8"))


REGISTRATION = (f"<SWDJ><NSRSBH>{PERSON_ID}</NSRSBH><SWJGDM>133010200</SWJGDM><SWJGMC>国家税务总局杭州市上城区税务局</SWJGMC>"
                "<DJZT>1</DJZT><DJRQ>2015-04-01</DJRQ></SWDJ>")
YEAR = (f"<NSJL><NSRSBH>{PERSON_ID}</NSRSBH><ND>2025</ND><SBSR>360000.00</SBSR><YNSE>45000.00</YNSE><YJSE>40000.00</YJSE>"
        "<QSJE>5000.00</QSJE><TSJE>1200.00</TSJE><ZYZFDW>杭州某某科技有限公司</ZYZFDW></NSJL>")


def test_codec_is_registered_with_what_it_can_do() -> None:
    assert CODECS["tax"] is TaxCodec
    assert TaxCodec.action_categories == {"inquiry": ("tax",), "valuation": ("real_estate",)}
    assert TaxCodec.transports == ("soap",)
    assert set(TaxCodec.actions) == {"inquiry", "valuation"}


def test_inquiry_and_valuation_match_the_contract(codec: TaxCodec) -> None:
    inquiry = codec.encode(order())
    root = xml.parse_valid(inquiry.body, "tax-v1")
    assert inquiry.operation == "Inquire" and etree.QName(root).localname == "InquiryRequest"
    assert root.findtext(f"{{{NS}}}Head/{{{NS}}}XZ") == "1"
    priced = codec.encode(valuation(UNIT, OTHER_UNIT))
    root = xml.parse_valid(priced.body, "tax-v1")
    assert priced.operation == "Valuation" and root.findtext(f"{{{NS}}}Head/{{{NS}}}XZ") == "3"
    assert [e.text for e in root.iter(f"{{{NS}}}BDCDYH")] == [UNIT, OTHER_UNIT]


@pytest.mark.parametrize(
    ("the_order", "words"),
    [
        (valuation(), "a valuation order needs lines"),
        (valuation("12345"), "BDCDYH"),
        (order(action="freeze"), "action 'freeze' is not one the tax bureau takes"),
    ],
)
def test_encode_refuses_what_breaks_the_format(codec: TaxCodec, the_order: DeliveryOrder, words: str) -> None:
    with pytest.raises(OutgoingInvalid, match=words):
        codec.encode(the_order)


def test_inquiry_answer_maps_to_tax_assets(codec: TaxCodec) -> None:
    envelope = codec.encode(order())
    decoded = codec.decode(answer(envelope, REGISTRATION + YEAR), envelope)
    registration, year = decoded.assets
    assert registration["category"] == "tax" and registration["identifier"] == mask_id_number(PERSON_ID)
    assert PERSON_ID not in str(registration)  # a person's taxpayer number is their ID number: only ever masked
    assert registration["details"]["tax_office"] == "国家税务总局杭州市上城区税务局"
    assert year["identifier"] == f"{mask_id_number(PERSON_ID)}/2025"
    assert PERSON_ID not in str(year)
    assert year["balance"] == "1200.00"  # the refund the bureau owes the debtor
    assert year["details"]["income_declared"] == "360000.00" and year["details"]["arrears"] == "5000.00"
    assert year["details"]["main_payer"] == "杭州某某科技有限公司"
    for asset in decoded.assets:
        AssetRecordSchema().load(asset)


def test_valuation_answer_maps_to_real_estate_values(codec: TaxCodec) -> None:
    envelope = codec.encode(valuation(UNIT, OTHER_UNIT))
    data = (f"<CKJGXX><BDCDYH>{UNIT}</BDCDYH><CKJG>2350000.00</CKJG><JGRQ>2026-10-01</JGRQ><YXQZ>2027-10-01</YXQZ></CKJGXX>"
            f"<CKJGXX><BDCDYH>{OTHER_UNIT}</BDCDYH><WJGYY>无计税参考价格</WJGYY></CKJGXX>")
    priced, unpriced = codec.decode(answer(envelope, data), envelope).assets
    assert (priced["category"], priced["identifier"], priced["value"]) == ("real_estate", UNIT, "2350000.00")
    assert priced["details"] == {"valuation": "tax_reference_price", "priced_on": "2026-10-01", "valid_until": "2027-10-01"}
    assert unpriced["identifier"] == OTHER_UNIT and "value" not in unpriced
    assert unpriced["details"]["reason"] == "无计税参考价格"
    for asset in (priced, unpriced):
        AssetRecordSchema().load(asset)


def test_valuation_answer_must_price_the_units_asked(codec: TaxCodec) -> None:
    envelope = codec.encode(valuation(UNIT))
    data = f"<CKJGXX><BDCDYH>{OTHER_UNIT}</BDCDYH><WJGYY>无</WJGYY></CKJGXX>"
    with pytest.raises(IncomingInvalid, match="asked for"):
        codec.decode(answer(envelope, data), envelope)


def test_binding_and_error_codes(codec: TaxCodec) -> None:
    envelope = codec.encode(order())
    with pytest.raises(AnswerNotBound):
        codec.decode(answer(envelope, YEAR, key="other"), envelope)
    with pytest.raises(AnswerNotBound):
        codec.decode(answer(codec.encode(order(officer="officer.li")), YEAR), envelope)
    with pytest.raises(AgencyUnavailable):
        codec.decode(answer(envelope, None, code="1000"), envelope)
    with pytest.raises(AgencyRefused):
        codec.decode(answer(envelope, None, code="2000"), envelope)
    with pytest.raises(IncomingInvalid, match="ValuationAnswer but the request was a InquiryRequest"):
        codec.decode(answer(codec.encode(valuation(UNIT)), ""), envelope)


def test_dtd_is_refused(codec: TaxCodec) -> None:
    envelope = codec.encode(order())
    body = b'<!DOCTYPE x [<!ENTITY e SYSTEM "file:///etc/passwd">]><InquiryAnswer xmlns="urn:enforcement-gateway:tax:v1">&e;</InquiryAnswer>'
    with pytest.raises(IncomingInvalid, match="DOCTYPE"):
        codec.decode(Reply(200, body), envelope)
