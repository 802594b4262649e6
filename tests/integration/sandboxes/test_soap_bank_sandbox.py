"""The SOAP bank sandbox over real HTTP on loopback, driven by the gateway's own
SoapTransport and BankCodec: every action end to end, the ledger moving, the
duplicate memory, faults, knobs, WS-Security and hostile XML."""

from __future__ import annotations

import ast
import threading
from dataclasses import replace
from datetime import timedelta
from decimal import Decimal
from pathlib import Path
from typing import Iterator

import pytest
import requests
import zeep
from lxml import etree

from adapters.codecs.bank import BankCodec
from adapters.errors import AgencyRefused, AgencyUnavailable, OutgoingInvalid, TransportTimeout
from adapters.interfaces import ControlLine, DeliveryOrder, Envelope, SubjectRef
from adapters.transports.soap import SoapTransport
from sandboxes.bank import BankAgency
from sandboxes.bank_data import EXEMPT_KINDS, opening_accounts
from sandboxes.server import FaultKnobs, SandboxServer
from sandboxes.soap_bank import DEFAULT_PREFIX, WSDL_PATH, create_app
from schemas import xml
from schemas.canonical import AssetRecordSchema, ControlOutcomeSchema
from gateway.timeutil import court_today

REPO = Path(__file__).resolve().parents[3]
BANK_NAME = "sandbox bank"
SEED = 7
SOAP_ENV = "http://schemas.xmlsoap.org/soap/envelope/"
ID_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)


def resident_ids() -> Iterator[str]:
    for sequence in range(2000):
        body = f"3301021980{sequence:07d}"
        total = sum(int(d) * w for d, w in zip(body, ID_WEIGHTS))
        yield body + "10X98765432"[total % 11]


def subject_with(predicate) -> str:
    return next(i for i in resident_ids() if predicate(opening_accounts(BANK_NAME, SEED, i)))


def freezable(holdings) -> bool:
    return any(a.kind not in EXEMPT_KINDS and a.status == "1" for a in holdings.accounts)


def order(id_number: str, message_id: str, action: str = "inquiry", **changes) -> DeliveryOrder:
    base = DeliveryOrder(
        court_date=court_today(),
        message_id=message_id, action=action,
        categories=("deposit", "wealth_product") if action == "inquiry" else ("deposit",),
        subject=SubjectRef("person", "张三", id_number), case_number="(2024)浙0102执1234号", court_code="330102",
        officer="officer.wang", legal_basis_kind="ruling", legal_basis_number="(2024)浙0102执1234号之一",
        court_account="6222999900001111",
    )
    return replace(base, **changes)


@pytest.fixture
def bank() -> Iterator[tuple[SandboxServer, str]]:
    with SandboxServer(create_app(seed=SEED, name=BANK_NAME)) as server:
        yield server, server.url + DEFAULT_PREFIX


@pytest.fixture
def transport(bank) -> Iterator[SoapTransport]:
    _, url = bank
    transport = SoapTransport(url, timeout_seconds=5, wsdl=str(WSDL_PATH))
    yield transport
    transport.close()


def agency(server: SandboxServer) -> BankAgency:
    return server.app.extensions["bank_agency"]


def exchange(transport: SoapTransport, the_order: DeliveryOrder):
    codec = BankCodec()
    envelope = codec.encode(the_order)
    return envelope, codec.decode(transport.send(envelope), envelope)


# --- the served WSDL ---------------------------------------------------------------------------


def test_wsdl_is_served_with_its_address_and_schema_at_the_service_url(bank) -> None:
    _, url = bank
    wsdl = etree.fromstring(requests.get(url + "?wsdl", timeout=5).content)
    address = wsdl.find(".//{http://schemas.xmlsoap.org/wsdl/soap/}address")
    assert address.get("location") == url
    [imported] = wsdl.iter("{http://www.w3.org/2001/XMLSchema}import")
    assert imported.get("schemaLocation") == url + "?xsd=bank-v1"
    assert requests.get(url + "?xsd=bank-v1", timeout=5).content == (REPO / "schemas/xsd/bank-v1.xsd").read_bytes()
    assert requests.get(url + "?xsd=../../etc/passwd", timeout=5).status_code == 404


def test_zeep_can_build_a_client_from_the_served_wsdl(bank) -> None:
    _, url = bank
    session = requests.Session()
    session.trust_env = False
    client = zeep.Client(url + "?wsdl", transport=zeep.transports.Transport(session=session, timeout=5))
    assert set(client.service._binding._operations) == {"Inquire", "Control"}
    session.close()


# --- inquiry -------------------------------------------------------------------------------------


def test_inquiry_over_soap_reports_the_accounts_and_the_element_is_received_as_made(bank, transport) -> None:
    server, _ = bank
    subject = subject_with(lambda h: len(h.accounts) >= 1 and h.products)
    envelope, answer = exchange(transport, order(subject, "inq-1"))
    holdings = agency(server).holdings(subject)
    assert [a["identifier"] for a in answer.assets if a["category"] == "deposit"] == [a.number for a in holdings.accounts]
    assert [a["identifier"] for a in answer.assets if a["category"] == "wealth_product"] == [p.code for p in holdings.products]
    for asset in answer.assets:
        AssetRecordSchema().load(asset)
    # What the bank received in the Body is the codec's element, to the digest.
    received = server.app.extensions["soap_service"].received_digests
    assert received == [xml.digest(xml.parse(envelope.body))] == [answer.request_sha256]


def test_a_subject_without_an_account_gets_an_empty_answer(bank, transport) -> None:
    subject = subject_with(lambda h: not h.accounts and not h.products)
    _, answer = exchange(transport, order(subject, "inq-none"))
    assert answer.assets == []


def test_accounts_are_deterministic_per_bank_and_seed() -> None:
    subject = subject_with(lambda h: len(h.accounts) >= 1)
    first, again = opening_accounts(BANK_NAME, SEED, subject), opening_accounts(BANK_NAME, SEED, subject)
    assert [a.number for a in first.accounts] == [a.number for a in again.accounts]
    other_bank = opening_accounts("another bank", SEED, subject)
    assert [a.number for a in other_bank.accounts] != [a.number for a in first.accounts]
    holdings = [opening_accounts(BANK_NAME, SEED, i) for i in list(resident_ids())[:300]]
    accounts = [a for h in holdings for a in h.accounts]
    assert any(not h.accounts for h in holdings)
    assert any(a.kind in EXEMPT_KINDS for a in accounts)
    assert any(a.freezes for a in accounts)
    assert any(a.balance < 1000 for a in accounts) and any(a.balance > 100_000 for a in accounts)


# --- controls move the ledger ----------------------------------------------------------------------


@pytest.fixture
def account(bank) -> tuple[str, str]:
    """(subject, account number) of a normal account holding exactly 10,000.00 and no freeze."""
    server, _ = bank
    subject = subject_with(freezable)
    chosen = next(a for a in agency(server).holdings(subject).accounts if a.kind not in EXEMPT_KINDS and a.status == "1")
    chosen.freezes.clear()
    agency(server).set_balance(chosen.number, Decimal("10000.00"))
    return subject, chosen.number


def line(number: str, amount: str | None, **changes) -> ControlLine:
    base = ControlLine(number, Decimal(amount) if amount else None, court_today() + timedelta(days=180))
    return replace(base, **changes)


def test_freeze_renew_deduct_unfreeze_change_the_balances(bank, transport, account) -> None:
    server, _ = bank
    subject, number = account
    ledger = agency(server).account(number)

    _, frozen = exchange(transport, order(subject, "c-freeze", "freeze", lines=(line(number, "4000.00"),)))
    [outcome] = frozen.controls
    assert outcome["outcome"] == "controlled" and outcome["amount_controlled"] == "4000.00"
    assert (ledger.balance, ledger.available) == (Decimal("10000.00"), Decimal("6000.00"))
    reference = outcome["agency_reference"]

    later = court_today() + timedelta(days=300)
    _, renewed = exchange(transport, order(subject, "c-renew", "renew",
                                           lines=(line(number, None, until=later, original_reference=reference),)))
    assert renewed.controls[0]["outcome"] == "controlled" and renewed.controls[0]["until"] == later.isoformat()
    assert ledger.freezes[0].until == later

    _, deducted = exchange(transport, order(subject, "c-deduct", "deduct",
                                            lines=(line(number, "1500.00", original_reference=reference),)))
    assert deducted.controls[0]["outcome"] == "deducted" and deducted.controls[0]["amount_controlled"] == "1500.00"
    assert (ledger.balance, ledger.frozen, ledger.available) == (Decimal("8500.00"), Decimal("2500.00"), Decimal("6000.00"))
    [transfer] = agency(server).transfers
    assert (transfer.amount, transfer.to_account) == (Decimal("1500.00"), "6222999900001111")

    _, released = exchange(transport, order(subject, "c-release", "unfreeze",
                                            lines=(line(number, None, original_reference=reference),)))
    assert released.controls[0]["outcome"] == "released" and released.controls[0]["amount_controlled"] == "2500.00"
    assert (ledger.balance, ledger.available, ledger.freezes) == (Decimal("8500.00"), Decimal("8500.00"), [])
    for answer in (frozen, renewed, deducted, released):
        for control in answer.controls:
            ControlOutcomeSchema().load(control)
    assert agency(server).effects_applied == 4


def test_freeze_beyond_the_balance_is_partial_and_then_queued(bank, transport, account) -> None:
    server, _ = bank
    subject, number = account
    _, first = exchange(transport, order(subject, "p-1", "freeze", lines=(line(number, "25000.00"),)))
    assert first.controls[0]["outcome"] == "partly_controlled"
    assert (first.controls[0]["amount_requested"], first.controls[0]["amount_controlled"]) == ("25000.00", "10000.00")
    _, second = exchange(transport, order(subject, "p-2", "freeze", lines=(line(number, "100.00"),)))
    assert second.controls[0]["outcome"] == "queued" and second.controls[0]["queue_position"] == 2
    assert second.controls[0]["ahead"] and "court 330102" in second.controls[0]["ahead"][0]


def test_repeat_freeze_after_the_balance_rises_freezes_the_new_money(bank, transport, account) -> None:
    server, _ = bank
    subject, number = account
    exchange(transport, order(subject, "r-1", "freeze", lines=(line(number, None),)))  # the whole balance
    assert agency(server).account(number).available == 0
    agency(server).set_balance(number, Decimal("13000.00"))
    _, again = exchange(transport, order(subject, "r-2", "freeze", lines=(line(number, "5000.00"),)))
    assert again.controls[0]["outcome"] == "partly_controlled" and again.controls[0]["amount_controlled"] == "3000.00"
    assert agency(server).account(number).frozen == Decimal("13000.00")


def test_a_duplicate_key_gets_the_same_answer_and_no_second_effect(bank, transport, account) -> None:
    server, _ = bank
    subject, number = account
    codec = BankCodec()
    envelope = codec.encode(order(subject, "dup-1", "freeze", lines=(line(number, "1000.00"),)))
    first, second = transport.send(envelope), transport.send(envelope)
    assert first.body == second.body
    assert codec.decode(second, envelope).controls[0]["outcome"] == "controlled"
    bank_side = agency(server)
    assert (bank_side.effects_by_key["dup-1"], bank_side.duplicates, bank_side.effects_applied) == (1, 1, 1)
    assert bank_side.account(number).available == Decimal("9000.00")


def test_concurrent_freezes_never_freeze_more_than_the_balance(bank, account) -> None:
    server, url = bank
    subject, number = account
    transport = SoapTransport(url, timeout_seconds=10, wsdl=str(WSDL_PATH))
    outcomes: list[str] = []

    def freeze(index: int) -> None:
        outcomes.append(exchange(transport, order(subject, f"race-{index}", "freeze",
                                                  lines=(line(number, "3000.00"),)))[1].controls[0]["outcome"])

    threads = [threading.Thread(target=freeze, args=(i,)) for i in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=20)
    transport.close()
    assert sorted(outcomes) == ["controlled"] * 3 + ["partly_controlled"] + ["queued"] * 2
    assert agency(server).account(number).frozen == Decimal("10000.00")


def test_exempt_and_unknown_accounts_are_not_controlled(bank, transport) -> None:
    server, _ = bank
    subject = subject_with(lambda h: any(a.kind in EXEMPT_KINDS and a.balance > 0 for a in h.accounts))
    exempt = next(a for a in agency(server).holdings(subject).accounts if a.kind in EXEMPT_KINDS)
    _, answer = exchange(transport, order(subject, "ex-1", "freeze",
                                          lines=(line(exempt.number, "10.00"), line("6222000000000000000", "10.00"))))
    assert [c["outcome"] for c in answer.controls] == ["not_controlled", "not_controlled"]
    assert "exempt" in answer.controls[0]["reason"] and "no such account" in answer.controls[1]["reason"]
    assert agency(server).effects_applied == 0


# --- what never reaches the bank ----------------------------------------------------------------------


def test_an_invalid_outgoing_message_is_never_sent(bank, transport) -> None:
    server, _ = bank
    with pytest.raises(OutgoingInvalid):
        BankCodec().encode(order("123", "bad-1"))
    good = BankCodec().encode(order(subject_with(freezable), "bad-2"))
    with pytest.raises(OutgoingInvalid):
        transport.send(replace(good, operation="Control"))  # an InquiryRequest is not Control's input
    with pytest.raises(OutgoingInvalid):
        transport.send(Envelope("bad-3", "Inquire", b"<x>", "application/xml"))
    assert server.app.extensions["soap_service"].calls == 0
    assert agency(server).received == []


BILLION_LAUGHS = (
    b'<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY l2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">'
    b'<!ENTITY l3 "&l2;&l2;&l2;&l2;&l2;&l2;&l2;&l2;&l2;&l2;"><!ENTITY l4 "&l3;&l3;&l3;&l3;&l3;&l3;&l3;&l3;&l3;&l3;">]>'
)


@pytest.mark.parametrize(
    "body",
    [
        BILLION_LAUGHS + f'<s:Envelope xmlns:s="{SOAP_ENV}"><s:Body><x>&l4;</x></s:Body></s:Envelope>'.encode(),
        f'<!DOCTYPE s:Envelope [<!ENTITY x SYSTEM "file:///etc/passwd">]><s:Envelope xmlns:s="{SOAP_ENV}"><s:Body>&x;</s:Body></s:Envelope>'.encode(),
        b"<s:Envelope",
        b'<InquiryRequest xmlns="urn:enforcement-gateway:bank:v1"/>',
        f'<s:Envelope xmlns:s="{SOAP_ENV}"><s:Body><Unknown/></s:Body></s:Envelope>'.encode(),
    ],
)
def test_hostile_or_malformed_envelopes_get_a_client_fault(bank, body: bytes) -> None:
    server, url = bank
    response = requests.post(url, data=body, headers={"Content-Type": "text/xml; charset=utf-8"}, timeout=5)
    assert response.status_code == 400
    fault = etree.fromstring(response.content).find(f"{{{SOAP_ENV}}}Body/{{{SOAP_ENV}}}Fault")
    assert fault.findtext("faultcode") == "soap:Client"
    assert b"root:" not in response.content
    assert agency(server).received == []


def test_the_agency_answers_bad_bytes_with_an_error_answer_not_a_crash() -> None:
    bank_side = BankAgency(BANK_NAME, SEED)
    for message in (BILLION_LAUGHS + b"<x>&l4;</x>", b"garbage", b'<ControlRequest xmlns="urn:enforcement-gateway:bank:v1"><Head><BDHM>k-9</BDHM></Head></ControlRequest>'):
        answer = xml.parse_valid(bank_side.handle(message), "bank-v1")
        ns = "{urn:enforcement-gateway:bank:v1}"
        assert answer.findtext(f"{ns}Head/{ns}RESPONSECODE") == "3000"
    assert answer.findtext(f"{ns}Head/{ns}BDHM") == "k-9" and etree.QName(answer).localname == "ControlAnswer"
    assert bank_side.refused == 3 and bank_side.effects_applied == 0


def test_a_control_without_legal_basis_fails_review(bank, transport, account) -> None:
    subject, number = account
    codec = BankCodec()
    envelope = codec.encode(order(subject, "nb-1", "freeze", lines=(line(number, "10.00"),)))
    stripped = xml.parse(envelope.body)
    head = stripped.find("{urn:enforcement-gateway:bank:v1}Head")
    for name in ("WSLX", "WSH"):
        head.remove(head.find(f"{{urn:enforcement-gateway:bank:v1}}{name}"))
    envelope = replace(envelope, body=xml.serialize(stripped))
    with pytest.raises(AgencyRefused, match="code 3010"):
        codec.decode(transport.send(envelope), envelope)


# --- knobs and WS-Security ------------------------------------------------------------------------------


def test_failure_knob_is_a_server_fault_and_unavailable() -> None:
    with SandboxServer(create_app(FaultKnobs(failure_rate=1.0, seed=1), seed=SEED)) as server:
        transport = SoapTransport(server.url + DEFAULT_PREFIX, timeout_seconds=5, wsdl=str(WSDL_PATH))
        with pytest.raises(AgencyUnavailable, match="soap:Server .HTTP 500.: temporarily unable"):
            exchange(transport, order(subject_with(freezable), "knob-1"))
        transport.close()
        assert server.app.extensions["soap_service"].faults_injected == 1
        assert server.app.extensions["bank_agency"].received == []


def test_latency_knob_beyond_the_timeout_is_a_timeout() -> None:
    with SandboxServer(create_app(FaultKnobs(latency_seconds=1.0), seed=SEED)) as server:
        transport = SoapTransport(server.url + DEFAULT_PREFIX, timeout_seconds=0.3, wsdl=str(WSDL_PATH))
        with pytest.raises(TransportTimeout):
            exchange(transport, order(subject_with(freezable), "slow-1"))
        transport.close()


def test_ws_security_credentials_are_checked_and_recorded() -> None:
    with SandboxServer(create_app(seed=SEED, credentials=("court-gw", "pa55"))) as server:
        url, subject = server.url + DEFAULT_PREFIX, subject_with(freezable)
        good = SoapTransport(url, timeout_seconds=5, wsdl=str(WSDL_PATH), username="court-gw", password="pa55")
        exchange(good, order(subject, "ws-1"))
        for username, password in (("court-gw", "wrong"), (None, None)):
            bad = SoapTransport(url, timeout_seconds=5, wsdl=str(WSDL_PATH), username=username, password=password)
            with pytest.raises(AgencyRefused, match="code 2000"):
                exchange(bad, order(subject, "ws-2"))
            bad.close()
        good.close()
        assert server.app.extensions["soap_service"].security == [
            {"username": "court-gw", "password_type": "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-username-token-profile-1.0#PasswordText"}
        ]


# --- boundaries ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("module", ["bank.py", "bank_data.py", "soap_service.py", "soap_bank.py", "tax.py", "soap_tax.py",
                                    "polling_bank.py"])
def test_sandboxes_import_schemas_only(module: str) -> None:
    tree = ast.parse((REPO / "sandboxes" / module).read_text(encoding="utf-8"))
    imported = {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module}
    imported |= {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    project = {name.split(".")[0] for name in imported} & {"adapters", "gateway", "audit", "schemas", "sandboxes", "config"}
    assert project <= {"schemas", "sandboxes"}
