"""The gateway's SOAP service for agencies that poll (docs/agencies/pull.md): listing,
the refetch rule, documents and credentials by key, results fed back row by row,
send-backs, authentication (UsernameToken over TLS only, or the agency's JWT),
hostile XML; every answer checked against pull-v1.xsd."""

from __future__ import annotations

import base64
import hashlib
import time

import pytest
from lxml import etree
from pull_support import (
    OTHER_PASSWORD,
    PASSWORD,
    SOAP_PATH,
    envelope,
    feed_body,
    pull_registry,
    read,
)

from conftest import audit_rows
from gateway.attachments.models import Document, OfficerCredential, RequestDocument
from gateway.deliveries.models import Delivery
from sandboxes.bank import BankAgency

HTTPS = "https://localhost"


def _app(overrides, **registry_kw):
    from gateway.app import create_app

    return create_app(overrides, registry=pull_registry(**registry_kw))


@pytest.fixture
def app(overrides):
    application = _app(overrides)
    yield application
    application.extensions["db"].dispose()


class Caller:
    """An agency calling the service through the Flask test client (https unless told)."""

    def __init__(self, app, username="bank-pull-user", password=PASSWORD, base_url=HTTPS, token=None):
        self.client, self.username, self.password, self.base_url, self.token = (
            app.test_client(), username, password, base_url, token)

    def call(self, operation, body="", **kw):
        headers = {"Content-Type": "text/xml; charset=utf-8",
                   "SOAPAction": f'"urn:enforcement-gateway:pull:v1:{operation}"'}
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
            raw = envelope(operation, body)
        else:
            raw = envelope(operation, body, username=self.username, password=self.password)
        reply = self.client.post(SOAP_PATH, data=kw.get("raw", raw), headers=headers, base_url=self.base_url)
        return read(reply.status_code, reply.data)

    def list(self, operation="getXzcxList", limit=None):
        answer = self.call(operation, f"<p:MAX>{limit}</p:MAX>" if limit else "")
        assert answer.code == "0000", answer.info
        return answer.rows("QQ")


def _inquiry(api, app, **kw):
    """One inquiry, stored by the worker for both polling banks; its request id."""
    if kw.pop("register", True):
        assert api.register_case().status_code == 201
    reply = api.inquire(**kw)
    assert reply.status_code == 202, reply.text
    app.extensions["worker"].drain()
    return reply.json()["id"]


def _deliveries(api, request_id):
    return {d["agency"]: d for d in api.get(f"/api/v1/requests/{request_id}").json()["deliveries"]}


def test_an_agency_lists_only_its_own_pending_requests_and_is_not_offered_them_twice(api, app):
    request_id = _inquiry(api, app)
    ours = _deliveries(api, request_id)
    listed = Caller(app).list()
    assert [r["BDHM"] for r in listed] == [ours["bank-pull"]["id"]]  # not bank-other's
    row = listed[0]
    assert row["XZ"] == "1" and row["CZLX"] == "inquiry" and row["WSSL"] == "0"
    message = base64.b64decode(row["QQNR"])
    assert hashlib.sha256(message).hexdigest() == row["SHA256"]
    with app.extensions["db"].reading() as session:
        delivery = session.get(Delivery, row["BDHM"])
        assert delivery.request_body == message and delivery.fetched_at is not None
    assert Caller(app).list("getXzkzList") == []  # controls apart
    assert Caller(app).list() == []  # fetched, not acknowledged, but within refetch_after_seconds
    other = Caller(app, "bank-other-user", OTHER_PASSWORD).list()
    assert [r["BDHM"] for r in other] == [ours["bank-other"]["id"]]
    fetches = [(e.outcome, e.actor_sub, e.delivery_id) for e in audit_rows(app) if e.action == "delivery.fetched"]
    assert fetches == [("first_fetch", "bank-pull-user", ours["bank-pull"]["id"]),
                       ("first_fetch", "bank-other-user", ours["bank-other"]["id"])]


def test_an_unacknowledged_request_is_offered_again_after_refetch_after_seconds(overrides, settings):
    from conftest import Api
    from sandboxes.server import SandboxServer

    app = _app(overrides, refetch=1)
    server = SandboxServer(app).start()
    try:
        api = Api(server.url, settings)
        first_id = _inquiry(api, app)
        (first,) = Caller(app).list()
        assert Caller(app).list() == []
        time.sleep(1.1)
        second_id = _inquiry(api, app, register=False)
        again = Caller(app).list()
        second = _deliveries(api, second_id)["bank-pull"]["id"]
        assert [r["BDHM"] for r in again] == [first["BDHM"], second]  # oldest first, the first offered again
        assert first["BDHM"] == _deliveries(api, first_id)["bank-pull"]["id"]
        answer = BankAgency("bank").handle(base64.b64decode(first["QQNR"]))
        acks = Caller(app).call("shfeedXzcxInfo", feed_body([(first["BDHM"], answer)])).rows("HZ")
        assert [a["CLJG"] for a in acks] == ["1"]
        time.sleep(1.1)
        assert [r["BDHM"] for r in Caller(app).list()] == [second]  # the answered one never again
        outcomes = [e.outcome for e in audit_rows(app) if e.action == "delivery.fetched" and e.delivery_id == first["BDHM"]]
        assert outcomes == ["first_fetch", "fetched_again"]
    finally:
        server.stop()
        app.extensions["db"].dispose()


def test_results_fed_back_row_by_row_each_acknowledged(api, app):
    request_id = _inquiry(api, app)
    (row,) = Caller(app).list()
    other_key = _deliveries(api, request_id)["bank-other"]["id"]
    answer = BankAgency("bank").handle(base64.b64decode(row["QQNR"]))
    reply = Caller(app).call("shfeedXzcxInfo", feed_body([
        (row["BDHM"], answer),
        (row["BDHM"], answer),  # the same result again: a duplicate, ignored
        (other_key, answer),  # another agency's request: refused like an unknown one
        ("no-such-key", answer),
        (row["BDHM"] + "x", b"<not-xml"),
    ]))
    assert reply.code == "0000" and reply.info == "2 of 5 row(s) accepted"
    acks = reply.rows("HZ")
    assert [(a["BDHM"], a["CLJG"]) for a in acks] == [
        (row["BDHM"], "1"), (row["BDHM"], "1"), (other_key, "0"), ("no-such-key", "0"), (row["BDHM"] + "x", "0")]
    assert acks[0]["CLXX"] == "recorded" and "duplicate ignored" in acks[1]["CLXX"]
    assert acks[2]["CLXX"] == f"no request {other_key} for agency bank-pull"
    assert acks[3]["CLXX"] == "no request no-such-key for agency bank-pull"
    states = _deliveries(api, request_id)
    assert states["bank-pull"]["state"] == "answered" and states["bank-other"]["state"] == "sent"
    # One batch is recorded in one go: the refusals are audited before the answers.
    results = sorted((e.outcome, e.actor_sub) for e in audit_rows(app) if e.action == "delivery.result")
    assert results == [("answered", "bank-pull-user"), ("duplicate_discarded", "bank-pull-user"),
                       ("refused", "bank-pull-user"), ("refused", "bank-pull-user"), ("refused", "bank-pull-user")]


def test_a_result_that_breaks_the_format_or_the_binding_is_refused(api, app):
    _inquiry(api, app)
    (row,) = Caller(app).list()
    answer = BankAgency("bank").handle(base64.b64decode(row["QQNR"]))
    unbound = etree.fromstring(answer)
    (digest,) = [e for e in unbound.iter() if etree.QName(e).localname == "QQSHA256"]
    digest.text = "0" * 64  # names another request
    acks = Caller(app).call("shfeedXzcxInfo", feed_body([(row["BDHM"], etree.tostring(unbound))])).rows("HZ")
    assert acks[0]["CLJG"] == "0" and acks[0]["CLXX"].startswith("refused: answer_not_bound: "), acks
    with app.extensions["db"].reading() as session:
        assert session.get(Delivery, row["BDHM"]).state == "failed"  # quarantined, as a posted result would be


def test_a_result_for_a_request_not_yet_listed_or_through_the_wrong_operation_is_refused(api, app):
    request_id = _inquiry(api, app)
    key = _deliveries(api, request_id)["bank-pull"]["id"]
    acks = Caller(app).call("shfeedXzcxInfo", feed_body([(key, b"<x/>")])).rows("HZ")
    assert acks[0]["CLJG"] == "0" and "has not been listed to bank-pull yet" in acks[0]["CLXX"]
    Caller(app).list()
    acks = Caller(app).call("shfeedXzkzInfo", feed_body([(key, b"<x/>")])).rows("HZ")
    assert acks[0]["CLXX"] == f"request {key} is a query: feed its result with shfeedXzcxInfo"
    wrong_documents = Caller(app).call("kzwsInfo", f"<p:BDHM>{key}</p:BDHM>")
    assert wrong_documents.is_fault and wrong_documents.code == "3000" and "cxwsInfo" in wrong_documents.info
    assert _deliveries(api, request_id)["bank-pull"]["state"] == "sent"


def test_a_send_back_ends_the_delivery_with_its_reason(api, app):
    request_id = _inquiry(api, app)
    (row,) = Caller(app).list()
    reply = Caller(app).call("htInfo", f"<p:BDHM>{row['BDHM']}</p:BDHM><p:HTYY>业务审核未通过: 文书不全</p:HTYY>")
    assert reply.code == "0000" and reply.rows("HZ")[0]["CLJG"] == "1"
    state = api.get(f"/api/v1/requests/{request_id}").json()
    pull = next(d for d in state["deliveries"] if d["agency"] == "bank-pull")
    assert pull["state"] == "rejected" and pull["error"] == "sent back by bank-pull: 业务审核未通过: 文书不全"
    again = Caller(app).call("htInfo", f"<p:BDHM>{row['BDHM']}</p:BDHM><p:HTYY>again</p:HTYY>").rows("HZ")
    assert again[0]["CLJG"] == "0" and "no longer awaits a result (rejected)" in again[0]["CLXX"]
    answer = BankAgency("bank").handle(base64.b64decode(row["QQNR"]))
    late = Caller(app).call("shfeedXzcxInfo", feed_body([(row["BDHM"], answer)])).rows("HZ")
    assert late[0]["CLJG"] == "0" and "is closed (rejected)" in late[0]["CLXX"]
    events = [(e.action, e.outcome) for e in audit_rows(app) if e.delivery_id == row["BDHM"]]
    assert ("delivery.sent_back", "rejected") in events and ("delivery.sent_back", "refused") in events


def _document(session, content: bytes, media_type: str) -> Document:
    document = Document(sha256=hashlib.sha256(content).hexdigest(), md5=hashlib.md5(content).hexdigest(),
                        media_type=media_type, size_bytes=len(content), content=content, uploaded_by="officer.wang",
                        court_code="330102")
    session.add(document)
    return document


def test_documents_and_credentials_by_key_only_for_the_caller(api, app):
    request_id = _inquiry(api, app)
    keys = {a: d["id"] for a, d in _deliveries(api, request_id).items()}
    pdf, work, duty = b"%PDF-1.7 ruling", b"\x89PNG work card", b"\xff\xd8 duty card"
    with app.extensions["db"].transaction() as session:
        ruling = _document(session, pdf, "application/pdf")
        work_doc, duty_doc = _document(session, work, "image/png"), _document(session, duty, "image/jpeg")
        session.flush()
        session.add(RequestDocument(request_id=request_id, position=1, document_sha256=ruling.sha256,
                                    name="协助查询通知书.pdf"))
        session.add(OfficerCredential(officer_sub="officer.wang", court_code="330102", name="王五",
                                      work_card_number="GZ-001", duty_card_number="GW-001",
                                      work_card_image_sha256=work_doc.sha256, duty_card_image_sha256=duty_doc.sha256,
                                      filed_by="officer.wang"))
    (row,) = Caller(app).list()
    assert row["WSSL"] == "1"
    documents = Caller(app).call("cxwsInfo", f"<p:BDHM>{keys['bank-pull']}</p:BDHM>")
    (document,) = documents.rows("WSINFO")
    assert base64.b64decode(document["WSNR"]) == pdf and document["MD5"] == hashlib.md5(pdf).hexdigest()
    assert document["WJMC"] == "协助查询通知书.pdf" and document["WJLX"] == "pdf" and document["XH"] == "1"
    (credential,) = Caller(app).call("zjInfo", f"<p:BDHM>{keys['bank-pull']}</p:BDHM>").rows("ZJINFO")
    assert credential["XM"] == "王五" and credential["GZZBH"] == "GZ-001"
    for key in (keys["bank-other"], "unknown-key"):  # another agency's key looks exactly like an unknown one
        for operation in ("cxwsInfo", "zjInfo"):
            refused = Caller(app).call(operation, f"<p:BDHM>{key}</p:BDHM>")
            assert refused.is_fault and refused.status == 404 and refused.code == "4040"
            assert refused.info == f"no request {key} for agency bank-pull (code 4040)"
    served = [(e.action, e.details) for e in audit_rows(app) if e.action.endswith("_fetched")]
    assert served[0][0] == "delivery.documents_fetched" and served[0][1]["documents"] == [hashlib.sha256(pdf).hexdigest()]
    assert served[1][1]["credentials"][0]["images"] == [hashlib.sha256(work).hexdigest(), hashlib.sha256(duty).hexdigest()]


def test_a_pull_delivery_expires_at_its_deadline_fetched_or_not(overrides, settings):
    from conftest import Api
    from sandboxes.server import SandboxServer

    app = _app(overrides, deadline=1)
    server = SandboxServer(app).start()
    try:
        api = Api(server.url, settings)
        request_id = _inquiry(api, app)
        Caller(app).list()  # bank-pull fetched it; bank-other never did
        time.sleep(1.1)
        app.extensions["worker"].drain()
        states = _deliveries(api, request_id)
        assert {a: d["state"] for a, d in states.items()} == {"bank-pull": "expired", "bank-other": "expired"}
        assert Caller(app).list() == [] and Caller(app, "bank-other-user", OTHER_PASSWORD).list() == []
        assert api.get(f"/api/v1/requests/{request_id}").json()["state"] == "failed"
    finally:
        server.stop()
        app.extensions["db"].dispose()


# --- authentication ------------------------------------------------------------------------------------


def test_a_username_token_over_plain_http_is_refused(api, app):
    _inquiry(api, app)
    refused = Caller(app, base_url="http://localhost").call("getXzcxList")
    assert refused.is_fault and refused.code == "2000" and refused.status == 401
    assert "accepted over TLS only" in refused.info
    assert Caller(app).list()  # nothing was marked fetched by the refused call


def test_a_bad_password_or_user_is_refused_and_audited(api, app):
    _inquiry(api, app)
    for caller in (Caller(app, password="wrong"), Caller(app, username="nobody"),
                   Caller(app, password=OTHER_PASSWORD)):
        refused = caller.call("getXzcxList")
        assert refused.is_fault and refused.code == "2000" and refused.status == 401
        assert refused.info == "bad credentials (code 2000): unknown user name or wrong password"
    refusals = [e for e in audit_rows(app) if e.action == "api.post" and e.outcome == "refused"]
    assert refusals and refusals[0].details["code"] == "soap_2000"  # the rest of the window counted, not one by one
    assert not [e for e in audit_rows(app) if e.action == "delivery.fetched"]


def test_the_agency_jwt_works_and_a_bad_or_wrong_token_is_refused(api, app):
    request_id = _inquiry(api, app)
    token = api.token(role="agency", court=None, agency="bank-pull", sub="bank-pull.poller")
    listed = Caller(app, token=token, base_url="http://localhost").list()  # a JWT needs no TLS of the service
    assert [r["BDHM"] for r in listed] == [_deliveries(api, request_id)["bank-pull"]["id"]]
    assert [e.actor_sub for e in audit_rows(app) if e.action == "delivery.fetched"] == ["bank-pull.poller"]
    bad = Caller(app, token=token[:-4] + "AAAA").call("getXzcxList")
    assert bad.is_fault and bad.code == "2010" and bad.status == 401
    officer = Caller(app, token=api.token()).call("getXzcxList")
    assert officer.is_fault and officer.code == "2010" and "may not poll" in officer.info
    psb = Caller(app, token=api.token(role="agency", court=None, agency="psb", sub="psb")).call("getXzcxList")
    assert psb.is_fault and psb.code == "2010"


# --- the contract and hostile input ---------------------------------------------------------------------


def test_hostile_or_invalid_xml_is_refused_as_bad_input(api, app):
    caller = Caller(app)
    doctype = (b'<?xml version="1.0"?><!DOCTYPE x [<!ENTITY a "aaaa">]>'
               b'<soap:Envelope xmlns:soap="http://schemas.xmlsoap.org/soap/envelope/"><soap:Body/></soap:Envelope>')
    for raw, expected in ((doctype, "DOCTYPE"), (b"<unclosed", "malformed"),
                          (envelope("getXzcxList", "<p:MAX>0</p:MAX>", username="bank-pull-user", password=PASSWORD),
                           "getXzcxList (code 3000): breaks pull-v1"),
                          (envelope("getXzcxListResponse", username="bank-pull-user", password=PASSWORD),
                           "no operation takes")):
        refused = caller.call("getXzcxList", raw=raw)
        assert refused.is_fault and refused.code == "3000" and refused.status == 400, refused.info
        assert expected in refused.info
        assert refused.payload.findtext("faultcode") == "soap:Client"


def test_the_wsdl_and_xsd_are_served_with_their_address(app):
    client = app.test_client()
    wsdl = client.get(SOAP_PATH + "?wsdl", base_url="https://gateway.example:8443")
    assert wsdl.status_code == 200
    root = etree.fromstring(wsdl.data)
    address = root.find(".//{http://schemas.xmlsoap.org/wsdl/soap/}address")
    assert address.get("location") == "https://gateway.example:8443" + SOAP_PATH
    imported = root.find(".//{http://www.w3.org/2001/XMLSchema}import")
    assert imported.get("schemaLocation") == "https://gateway.example:8443" + SOAP_PATH + "?xsd=pull-v1"
    xsd = client.get(SOAP_PATH + "?xsd=pull-v1", base_url=HTTPS)
    assert xsd.status_code == 200 and b'targetNamespace="urn:enforcement-gateway:pull:v1"' in xsd.data
    assert client.get(SOAP_PATH + "?xsd=bank-v1", base_url=HTTPS).status_code == 404
    spec = client.get("/api/v1/openapi.json").get_json()
    assert not [p for p in spec["paths"] if "soap" in p]  # the WSDL is its contract, not the OpenAPI document
