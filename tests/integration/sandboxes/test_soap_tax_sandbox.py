"""The SOAP tax sandbox over real HTTP on loopback, driven by SoapTransport and TaxCodec."""

from __future__ import annotations

from dataclasses import replace
from typing import Iterator

import pytest
import requests
from lxml import etree

from adapters.codecs.tax import TaxCodec
from adapters.interfaces import ControlLine, DeliveryOrder, SubjectRef
from adapters.transports.soap import SoapTransport
from sandboxes.server import SandboxServer
from sandboxes.soap_tax import DEFAULT_PREFIX, WSDL_PATH, create_app
from sandboxes.tax import TaxAgency, reference_price
from schemas import xml
from schemas.canonical import AssetRecordSchema

ID_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
UNITS = tuple(f"330102001001GB{n:05d}F00010001" for n in range(12))


def resident_id(sequence: int) -> str:
    body = f"3301021980{sequence:07d}"
    return body + "10X98765432"[sum(int(d) * w for d, w in zip(body, ID_WEIGHTS)) % 11]


def order(id_number: str, message_id: str, action: str = "inquiry", **changes) -> DeliveryOrder:
    base = DeliveryOrder(
        message_id=message_id, action=action, categories=("tax",) if action == "inquiry" else ("real_estate",),
        subject=SubjectRef("person", "张三", id_number), case_number="(2024)浙0102执1234号", court_code="330102",
        officer="officer.wang",
    )
    return replace(base, **changes)


@pytest.fixture
def tax() -> Iterator[tuple[SandboxServer, SoapTransport]]:
    with SandboxServer(create_app(seed=2)) as server:
        transport = SoapTransport(server.url + DEFAULT_PREFIX, timeout_seconds=5, wsdl=str(WSDL_PATH))
        yield server, transport
        transport.close()


def exchange(transport: SoapTransport, the_order: DeliveryOrder):
    codec = TaxCodec()
    envelope = codec.encode(the_order)
    return envelope, codec.decode(transport.send(envelope), envelope)


def test_wsdl_is_served_at_the_service_url(tax) -> None:
    server, _ = tax
    wsdl = etree.fromstring(requests.get(server.url + DEFAULT_PREFIX + "?wsdl", timeout=5).content)
    assert wsdl.find(".//{http://schemas.xmlsoap.org/wsdl/soap/}address").get("location") == server.url + DEFAULT_PREFIX


def test_inquiries_report_tax_records_for_known_subjects_and_nothing_for_others(tax) -> None:
    server, transport = tax
    counts = []
    for sequence in range(12):
        envelope, answer = exchange(transport, order(resident_id(sequence), f"t-{sequence}"))
        assert answer.request_sha256 == xml.digest(xml.parse(envelope.body))
        for asset in answer.assets:
            AssetRecordSchema().load(asset)
            assert asset["category"] == "tax"
        counts.append(len(answer.assets))
    assert 0 in counts and 4 in counts  # some unknown to the bureau; others registered with three tax years
    assert server.app.extensions["soap_service"].received_digests == server.app.extensions["tax_agency"].received


def test_valuation_prices_units_as_the_bureau_rules_say(tax) -> None:
    _, transport = tax
    _, answer = exchange(transport, order(resident_id(1), "v-1", "valuation", lines=tuple(ControlLine(u) for u in UNITS)))
    assert [a["identifier"] for a in answer.assets] == list(UNITS)
    for asset in answer.assets:
        AssetRecordSchema().load(asset)
        price = reference_price(asset["identifier"])
        if price is None:
            assert asset.get("value") is None and asset["details"]["valuation"] == "none"
        else:
            assert asset["value"] == f"{price[0]:.2f}" and asset["details"]["valid_until"] == price[2].isoformat()
    assert any(a.get("value") is None for a in answer.assets) and any(a.get("value") for a in answer.assets)


def test_a_repeated_key_gets_the_stored_answer(tax) -> None:
    server, transport = tax
    envelope = TaxCodec().encode(order(resident_id(3), "dup-tax"))
    assert transport.send(envelope).body == transport.send(envelope).body
    assert server.app.extensions["tax_agency"].duplicates == 1


def test_bad_bytes_get_an_error_answer() -> None:
    agency = TaxAgency("tax", 0)
    answer = xml.parse_valid(agency.handle(b'<!DOCTYPE x [<!ENTITY a "b">]><x>&a;</x>'), "tax-v1")
    assert answer.findtext("{urn:enforcement-gateway:tax:v1}Head/{urn:enforcement-gateway:tax:v1}RESPONSECODE") == "3000"
    assert agency.refused == 1
