"""Our SOAP stack against node-soap, a SOAP stack of another ecosystem.

* node-soap serves the bank WSDL (schemas/wsdl/bank-v1.wsdl) and answers; our
  SoapTransport and BankCodec call it: answers bind (node computes QQSHA256 as
  the exclusive-C14N SHA-256 of the element it received, with xml-crypto),
  faults map to AgencyRefused / AgencyUnavailable.
* A node-soap client reads the WSDL our Python sandbox serves and calls it, so
  our served WSDL, XSD and envelopes are consumable by another stack.
* A node-soap client polls the gateway's own pull service over TLS (pull-v1.wsdl,
  UsernameToken): lists, fetches documents and checks their MD5 and SHA-256 in JS,
  feeds back an answer (bound, and one not bound to its request) and sends one back.

node-soap (the npm package ``soap``) is installed from the committed lock file
on first use; a machine without Node.js or npm fails these tests rather than
skipping them, because the interop proof is a requirement, not an extra.
(No conftest.py here: the suite imports the top-level ``conftest`` by name.)
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import shutil
import subprocess
import threading
from dataclasses import replace
from datetime import timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any, Iterator

import pytest
from conftest import LEGAL_DOCUMENT, LEGAL_PDF
from polling_support import tls_gateway

from adapters.codecs.bank import BankCodec
from adapters.errors import AgencyRefused, AgencyUnavailable
from adapters.interfaces import ControlLine, DeliveryOrder, SubjectRef
from adapters.transports.soap import SoapTransport
from sandboxes.bank import BankAgency
from sandboxes.polling_bank import DEMO_PASSWORD, DEMO_USERNAME
from sandboxes.server import FaultKnobs, SandboxServer
from sandboxes.soap_bank import DEFAULT_PREFIX, create_app
from schemas import xml
from schemas.canonical import AssetRecordSchema, ControlOutcomeSchema
from schemas.xml import WSDL_DIR
from gateway.timeutil import court_today
from system_packages import one_at_a_time

WSDL = str(WSDL_DIR / "bank-v1.wsdl")
NODE_SOAP_DIR = Path(__file__).parent / "node_soap"
SUBJECT = "330102198703151157"
CLIENT_FAULT_SUBJECT = "11010519491231002X"  # bank_server.js answers a soap:Client fault for it
SERVER_FAULT_SUBJECT = "110105198001010019"  # ... and a soap:Server fault for this one


def order(id_number: str, message_id: str, action: str = "inquiry", **changes) -> DeliveryOrder:
    base = DeliveryOrder(
        court_date=court_today(),
        message_id=message_id, action=action, categories=("deposit",),
        subject=SubjectRef("person", "张三", id_number), case_number="(2024)浙0102执1234号", court_code="330102",
        officer="officer.wang", legal_basis_kind="ruling", legal_basis_number="(2024)浙0102执1234号之一",
    )
    return replace(base, **changes)


@pytest.fixture(scope="session")
def node_soap_dir() -> Path:
    for tool in ("node", "npm"):
        if shutil.which(tool) is None:
            pytest.fail(f"{tool} is not installed: the node-soap interop tests need Node.js and npm (apt-get install nodejs npm)")
    with one_at_a_time():  # each pytest-xdist process asks; one npm ci in the folder at a time
        if not (NODE_SOAP_DIR / "node_modules" / "soap").is_dir():
            result = subprocess.run(
                ["npm", "ci", "--no-audit", "--no-fund"], cwd=NODE_SOAP_DIR, capture_output=True, text=True, timeout=300,
            )
            if result.returncode != 0:
                pytest.fail(f"npm ci in {NODE_SOAP_DIR} failed:\n{result.stdout}\n{result.stderr}")
    return NODE_SOAP_DIR


@pytest.fixture(scope="module")
def node_bank(node_soap_dir: Path) -> Iterator[str]:
    process = subprocess.Popen(["node", "bank_server.js", "0"], cwd=node_soap_dir, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True)
    try:
        first_line: list[str] = []
        reader = threading.Thread(target=lambda: first_line.append(process.stdout.readline()), daemon=True)
        reader.start()
        reader.join(timeout=20)
        if not first_line or not first_line[0].startswith("listening "):
            process.kill()
            pytest.fail(f"node-soap bank did not start: {first_line} {process.stderr.read() if process.poll() is not None else ''}")
        yield f"http://127.0.0.1:{int(first_line[0].split()[1])}/soap/bank/v1"
    finally:
        process.terminate()
        try:
            process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            process.kill()


@pytest.fixture
def transport(node_bank: str) -> Iterator[SoapTransport]:
    transport = SoapTransport(node_bank, timeout_seconds=10, wsdl=WSDL)
    yield transport
    transport.close()


def test_inquiry_to_node_soap_binds_by_key_and_exclusive_c14n_digest(transport: SoapTransport) -> None:
    codec = BankCodec()
    envelope = codec.encode(order(SUBJECT, "node-inq-1"))
    answer = codec.decode(transport.send(envelope), envelope)  # raises AnswerNotBound unless node's digest is ours
    assert answer.message_id == "node-inq-1"
    assert answer.request_sha256 == xml.digest(xml.parse(envelope.body))
    [deposit] = answer.assets
    AssetRecordSchema().load(deposit)
    assert (deposit["identifier"], deposit["balance"]) == ("6222000012345678901", "1500.00")


def test_control_to_node_soap(transport: SoapTransport) -> None:
    codec = BankCodec()
    until = court_today() + timedelta(days=90)
    lines = (ControlLine("6222000012345678901", Decimal("800.00"), until), ControlLine("6222000012345678902", None, until))
    envelope = codec.encode(order(SUBJECT, "node-ctl-1", "freeze", lines=lines))
    controls = codec.decode(transport.send(envelope), envelope).controls
    assert [(c["identifier"], c["outcome"]) for c in controls] == [
        ("6222000012345678901", "controlled"), ("6222000012345678902", "controlled")]
    assert controls[0]["amount_controlled"] == "800.00" and controls[0]["until"] == until.isoformat()
    for control in controls:
        ControlOutcomeSchema().load(control)


def test_node_soap_client_fault_is_refused(transport: SoapTransport) -> None:
    envelope = BankCodec().encode(order(CLIENT_FAULT_SUBJECT, "node-fault-1"))
    with pytest.raises(AgencyRefused, match="soap:Client .*2000 bad credentials"):
        transport.send(envelope)


def test_node_soap_server_fault_is_unavailable(transport: SoapTransport) -> None:
    envelope = BankCodec().encode(order(SERVER_FAULT_SUBJECT, "node-fault-2"))
    with pytest.raises(AgencyUnavailable, match="soap:Server .*try later"):
        transport.send(envelope)


# --- node-soap as the client of our sandbox ---------------------------------------------------------


def node_client(node_soap_dir: Path, wsdl_url: str, operation: str, request: dict, credentials: str | None = None) -> dict:
    command = ["node", "bank_client.js", wsdl_url, operation, json.dumps(request, ensure_ascii=False)]
    if credentials:
        command.append(credentials)
    result = subprocess.run(command, cwd=node_soap_dir, capture_output=True, text=True, timeout=30)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def head(key: str, kind: str) -> dict:
    return {"BDHM": key, "XZ": kind, "CJSJ": "2026-11-23T10:00:00Z", "FYDM": "330102", "CBR": "officer.node",
            "AH": "(2024)浙0102执1234号", "WSLX": "ruling", "WSH": "(2024)浙0102执1234号之一"}


def test_node_soap_client_reads_our_served_wsdl_and_calls_both_operations(node_soap_dir: Path) -> None:
    app = create_app(seed=11)
    bank = app.extensions["bank_agency"]
    subject = next(s for s in (resident_id(n) for n in range(1000))
                   if any(a.kind in ("01", "02") and a.status == "1" for a in bank.holdings(s).accounts))
    with SandboxServer(app) as server:
        wsdl_url = server.url + DEFAULT_PREFIX + "?wsdl"
        data = {"XM": "张三", "ZJLX": "1", "DSRZJHM": subject, "CXNR": ["CK", "LC"]}
        out = node_client(node_soap_dir, wsdl_url, "Inquire", {"Head": head("node-1", "1"), "Data": data})
        answer = out["answer"]
        assert answer["Head"]["RESPONSECODE"] == "0000" and answer["Head"]["BDHM"] == "node-1"
        assert answer["Head"]["QQSHA256"] == out["request_digest"] == app.extensions["soap_service"].received_digests[0]
        accounts = answer["Data"]["CKZH"]
        accounts = accounts if isinstance(accounts, list) else [accounts]
        assert [a["ZH"] for a in accounts] == [a.number for a in bank.holdings(subject).accounts]

        target = next(a for a in bank.holdings(subject).accounts if a.kind in ("01", "02") and a.status == "1")
        target.freezes.clear()
        bank.set_balance(target.number, Decimal("900.00"))
        line = {"KZCS": "01", "ZH": target.number, "BZ": "CNY", "JE": "500.00",
                "KSRQ": court_today().isoformat(), "JSRQ": (court_today() + timedelta(days=30)).isoformat(),
                "CDH": "(2024)浙0102执1234号之一"}
        out = node_client(node_soap_dir, wsdl_url, "Control",
                          {"Head": head("node-2", "2"), "Data": {"XM": "张三", "ZJLX": "1", "DSRZJHM": subject, "KZ": [line]}})
        result = out["answer"]["Data"]["KZJG"]
        result = result[0] if isinstance(result, list) else result
        assert (result["KZZT"], result["SKJE"]) == ("1", "500.00")
        assert bank.account(target.number).available == Decimal("400.00")


def test_node_soap_client_with_ws_security_and_a_server_fault(node_soap_dir: Path) -> None:
    data = {"XM": "张三", "ZJLX": "1", "DSRZJHM": SUBJECT, "CXNR": ["CK"]}
    app = create_app(seed=1, credentials=("court-gw", "pa55"))
    with SandboxServer(app) as server:
        out = node_client(node_soap_dir, server.url + DEFAULT_PREFIX + "?wsdl", "Inquire",
                          {"Head": head("node-ws", "1"), "Data": data}, credentials="court-gw:pa55")
        assert out["answer"]["Head"]["RESPONSECODE"] == "0000"
        assert app.extensions["soap_service"].security[0]["username"] == "court-gw"
    with SandboxServer(create_app(FaultKnobs(failure_rate=1.0), seed=1)) as server:
        out = node_client(node_soap_dir, server.url + DEFAULT_PREFIX + "?wsdl", "Inquire",
                          {"Head": head("node-down", "1"), "Data": data})
        assert out["fault"]["faultcode"] == "soap:Server" and out["status"] == 500


ID_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)


def resident_id(sequence: int) -> str:
    body = f"3301021980{sequence:07d}"
    return body + "10X98765432"[sum(int(d) * w for d, w in zip(body, ID_WEIGHTS)) % 11]


# --- node-soap as a bank polling the gateway's pull service -----------------------------------------


def poll(node_soap_dir: Path, gateway: Any, *args: str) -> dict:
    """One node-soap call to the gateway's pull service over TLS (its certificate trusted
    through NODE_EXTRA_CA_CERTS), logged in as bank-c with the published demo password."""
    env = {**os.environ, "NODE_EXTRA_CA_CERTS": str(gateway.certfile)}
    result = subprocess.run(["node", "poll_client.js", gateway.wsdl_url, f"{DEMO_USERNAME}:{DEMO_PASSWORD}", *args],
                            cwd=node_soap_dir, capture_output=True, text=True, timeout=60, env=env)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_node_soap_polls_the_gateway_checks_md5_feeds_back_and_sends_back(node_soap_dir: Path, overrides, settings,
                                                                          tmp_path) -> None:
    with tls_gateway(overrides, settings, tmp_path) as gateway:
        api = gateway.api
        assert api.register_case().status_code == 201
        # Three inquiries before any answer (so none reuses another's result); the first carries a document.
        ids = [api.inquire(extra={"documents": [LEGAL_DOCUMENT]} if n == 0 else {}).json()["id"] for n in range(3)]
        gateway.app.extensions["worker"].drain()
        keys = {}
        for request_id in ids:
            [delivery] = api.get(f"/api/v1/requests/{request_id}").json()["deliveries"]
            keys[request_id] = delivery["id"]
        answered, unbound, sent_back = (keys[i] for i in ids)

        listing = poll(node_soap_dir, gateway, "list", "cx")
        assert listing["head"]["RESPONSECODE"] == "0000"
        rows = {row["BDHM"]: row for row in listing["rows"]}
        assert set(rows) == set(keys.values()) and {r["XZ"] for r in rows.values()} == {"1"}
        assert [rows[k]["WSSL"] for k in (answered, unbound, sent_back)] == [1, 0, 0]
        [document] = listing["documents"][answered]
        # node computed both digests of the bytes it received; the gateway stated the same.
        assert document["computed_md5"] == document["MD5"] == hashlib.md5(LEGAL_PDF).hexdigest()
        assert document["computed_sha256"] == document["SHA256"] == hashlib.sha256(LEGAL_PDF).hexdigest()
        assert (document["XH"], document["WJMC"]) == (1, LEGAL_DOCUMENT["name"])
        # The request bytes node received are the ones the gateway hashed.
        request = base64.b64decode(rows[answered]["QQNR"])
        assert xml.digest(xml.parse(request)) == rows[answered]["SHA256"]

        # The bank's answer is computed here by the sandbox bank (Python), fed back by node;
        # the same answer fed for another request is not bound to it and is refused.
        answer = base64.b64encode(BankAgency("Bank C", 18).handle(request)).decode()
        fed = poll(node_soap_dir, gateway, "feed", "cx",
                   json.dumps([{"BDHM": answered, "FKNR": answer}, {"BDHM": unbound, "FKNR": answer}]))
        acks = {ack["BDHM"]: ack for ack in fed["acks"]}
        assert acks[answered]["CLJG"] == "1"
        assert acks[unbound]["CLJG"] == "0" and "refused" in acks[unbound]["CLXX"]
        back = poll(node_soap_dir, gateway, "sendback", sent_back, "业务审核未通过: node-soap test")
        assert [(a["BDHM"], a["CLJG"]) for a in back["acks"]] == [(sent_back, "1")]

        states = {i: api.get(f"/api/v1/requests/{i}").json() for i in ids}
        assert states[ids[0]]["state"] == "completed" and states[ids[0]]["deliveries"][0]["state"] == "answered"
        assert states[ids[0]]["deliveries"][0]["result"]["asset_count"] >= 1
        refused = states[ids[1]]["deliveries"][0]
        assert refused["state"] != "answered" and refused["error"].startswith("answer_not_bound: answer is for message")
        assert answered in refused["error"] and unbound in refused["error"]
        assert states[ids[2]]["deliveries"][0]["state"] == "rejected"
        assert states[ids[2]]["deliveries"][0]["error"] == "sent back by bank-c: 业务审核未通过: node-soap test"
