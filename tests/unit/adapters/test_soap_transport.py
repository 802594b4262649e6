"""adapters.transports.soap against tiny HTTP servers on 127.0.0.1 that answer
what a real SOAP peer (or a broken one) would: payloads, faults, garbage, DTDs,
silence. The bank WSDL (schemas/wsdl/bank-v1.wsdl) gives the operations."""

from __future__ import annotations

import logging
import socket
import threading
import time
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Callable, Iterator

import pytest
from lxml import etree

from adapters import TRANSPORTS
from adapters.errors import (
    AdapterError,
    AgencyRefused,
    AgencyUnavailable,
    ConnectFailed,
    IncomingInvalid,
    OutgoingInvalid,
    TransportError,
    TransportTimeout,
)
from adapters.interfaces import Envelope
from adapters.transports.soap import SoapTransport, load_wsdl
from schemas import xml
from schemas.xml import WSDL_DIR

WSDL = str(WSDL_DIR / "bank-v1.wsdl")
BANK = "urn:enforcement-gateway:bank:v1"
SOAP_ENV = "http://schemas.xmlsoap.org/soap/envelope/"
ID_NUMBER = "330102198703151157"
REQUEST = (
    f'<InquiryRequest xmlns="{BANK}"><Head><BDHM>m-1</BDHM><XZ>1</XZ><CJSJ>2026-11-23T10:00:00Z</CJSJ>'
    f"<FYDM>330102</FYDM><CBR>officer.wang</CBR><AH>(2024)浙0102执1234号</AH></Head>"
    f"<Data><XM>张三</XM><ZJLX>1</ZJLX><DSRZJHM>{ID_NUMBER}</DSRZJHM><CXNR>CK</CXNR></Data></InquiryRequest>"
).encode("utf-8")
ENVELOPE = Envelope(message_id="m-1", operation="Inquire", body=REQUEST, media_type="application/xml; charset=utf-8")
ANSWER = f'<b:InquiryAnswer xmlns:b="{BANK}"><b:Head><b:XZ>1</b:XZ></b:Head></b:InquiryAnswer>'


def soap(body: str, *, extra_ns: str = "") -> bytes:
    return (
        f'<?xml version="1.0" encoding="utf-8"?><s:Envelope xmlns:s="{SOAP_ENV}"{extra_ns}>'
        f"<s:Body>{body}</s:Body></s:Envelope>"
    ).encode("utf-8")


def fault(code: str, reason: str) -> bytes:
    return soap(f"<s:Fault><faultcode>{code}</faultcode><faultstring>{reason}</faultstring></s:Fault>")


class Recorded:
    def __init__(self) -> None:
        self.requests: list[dict] = []


@contextmanager
def serve(respond: Callable[[BaseHTTPRequestHandler, bytes], None]) -> Iterator[tuple[str, Recorded]]:
    recorded = Recorded()

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_POST(self) -> None:  # noqa: N802
            body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            recorded.requests.append({"path": self.path, "headers": dict(self.headers), "body": body})
            respond(self, body)

        def log_message(self, *args) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/soap/bank/v1", recorded
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def reply_with(status: int, body: bytes, content_type: str = "text/xml; charset=utf-8"):
    def respond(handler: BaseHTTPRequestHandler, _body: bytes) -> None:
        handler.send_response(status)
        handler.send_header("Content-Type", content_type)
        handler.send_header("Content-Length", str(len(body)))
        handler.end_headers()
        handler.wfile.write(body)

    return respond


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def send(url: str, envelope: Envelope = ENVELOPE, **options):
    transport = SoapTransport(url, timeout_seconds=options.pop("timeout_seconds", 5), wsdl=WSDL, **options)
    try:
        return transport.send(envelope)
    finally:
        transport.close()


# --- success ---------------------------------------------------------------------------


def test_soap_is_the_registered_transport() -> None:
    assert TRANSPORTS["soap"] is SoapTransport


def test_the_codec_element_goes_in_the_body_as_is_and_the_payload_comes_back() -> None:
    with serve(reply_with(200, soap(ANSWER))) as (url, recorded):
        reply = send(url)
    [request] = recorded.requests
    assert request["path"] == "/soap/bank/v1"
    assert request["headers"]["SOAPAction"] == '"urn:enforcement-gateway:bank:v1:Inquire"'
    assert request["headers"]["Content-Type"] == "text/xml; charset=utf-8"
    sent = xml.parse(request["body"])
    assert etree.QName(sent) == etree.QName(SOAP_ENV, "Envelope")
    [payload] = sent.find(f"{{{SOAP_ENV}}}Body")
    assert xml.digest(payload) == xml.digest(xml.parse(REQUEST))
    assert sent.find(f"{{{SOAP_ENV}}}Header") is not None and len(sent.find(f"{{{SOAP_ENV}}}Header")) == 0
    # The payload alone, on one line, without the envelope's namespace declarations.
    assert reply.status == 200
    assert reply.media_type.startswith("application/xml")
    assert reply.body == f'<b:InquiryAnswer xmlns:b="{BANK}"><b:Head><b:XZ>1</b:XZ></b:Head></b:InquiryAnswer>'.encode()


def test_ws_security_username_token_is_sent_when_configured() -> None:
    with serve(reply_with(200, soap(ANSWER))) as (url, recorded):
        send(url, username="bank-user", password="s3cret")
    header = xml.parse(recorded.requests[0]["body"]).find(f"{{{SOAP_ENV}}}Header")
    wsse = "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-secext-1.0.xsd"
    token = header.find(f"{{{wsse}}}Security/{{{wsse}}}UsernameToken")
    assert token is not None
    assert token.findtext(f"{{{wsse}}}Username") == "bank-user"
    assert token.findtext(f"{{{wsse}}}Password") == "s3cret"


def test_no_security_header_without_credentials() -> None:
    with serve(reply_with(200, soap(ANSWER))) as (url, recorded):
        send(url)
    assert b"Security" not in recorded.requests[0]["body"]


def test_wsdl_is_parsed_once_and_each_thread_gets_its_own_client() -> None:
    assert load_wsdl(WSDL) is load_wsdl(WSDL_DIR / ".." / "wsdl" / "bank-v1.wsdl")
    with serve(reply_with(200, soap(ANSWER))) as (url, recorded):
        transport = SoapTransport(url, timeout_seconds=5, wsdl=WSDL)
        other = SoapTransport(url, timeout_seconds=5, wsdl=WSDL)
        assert transport._document is other._document
        statuses: list[int] = []
        threads = [threading.Thread(target=lambda: statuses.append(transport.send(ENVELOPE).status)) for _ in range(3)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=10)
        assert statuses == [200, 200, 200]
        assert len(transport._sessions) == 3
        transport.close()
        other.close()
        assert transport._sessions == []
    assert len(recorded.requests) == 3


def test_tls_and_timeouts_come_from_the_arguments() -> None:
    transport = SoapTransport("https://127.0.0.1:1/x", timeout_seconds=2.5, wsdl=WSDL, verify="/etc/ca.pem",
                              client_cert="/etc/client.pem", client_key="/etc/client.key")
    client = transport._client()
    assert client.transport.session.verify == "/etc/ca.pem"
    assert client.transport.session.cert == ("/etc/client.pem", "/etc/client.key")
    assert client.transport.session.trust_env is False
    assert client.transport.operation_timeout == 2.5
    assert client.settings.strict and client.settings.forbid_dtd and client.settings.forbid_entities
    assert client.settings.forbid_external and not client.settings.xml_huge_tree
    transport.close()


def test_zeep_never_logs_the_envelope(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    with serve(reply_with(200, soap(ANSWER))) as (url, _):
        send(url)
    assert ID_NUMBER not in caplog.text
    assert logging.getLogger("zeep.transports").getEffectiveLevel() >= logging.WARNING


def test_proxy_environment_is_ignored(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HTTP_PROXY", "http://127.0.0.1:9")
    monkeypatch.setenv("http_proxy", "http://127.0.0.1:9")
    with serve(reply_with(200, soap(ANSWER))) as (url, recorded):
        assert send(url).status == 200
    assert len(recorded.requests) == 1


# --- faults and statuses ----------------------------------------------------------------


@pytest.mark.parametrize("code", ["s:Server", "s:Server.Busy", "soap:Receiver"])
def test_server_fault_is_unavailable_with_its_reason(code: str) -> None:
    with serve(reply_with(500, fault(code, "core banking busy"))) as (url, _):
        with pytest.raises(AgencyUnavailable) as info:
            send(url)
    assert info.value.retryable is True
    assert "core banking busy" in info.value.message and code in info.value.message


@pytest.mark.parametrize("code", ["s:Client", "s:Client.Auth", "Sender", "s:VersionMismatch"])
def test_client_fault_is_refused_with_its_reason(code: str) -> None:
    with serve(reply_with(500, fault(code, "bad credentials"))) as (url, _):
        with pytest.raises(AgencyRefused) as info:
            send(url)
    assert info.value.retryable is False
    assert "bad credentials" in info.value.message


def test_fault_detail_code_is_in_the_message() -> None:
    body = soap(
        "<s:Fault><faultcode>s:Client</faultcode><faultstring>refused</faultstring><detail>"
        f'<BankFault xmlns="{BANK}"><RESPONSECODE>2000</RESPONSECODE><RESPONSEINFO>bad credentials</RESPONSEINFO>'
        "</BankFault></detail></s:Fault>"
    )
    with serve(reply_with(400, body)) as (url, _):
        with pytest.raises(AgencyRefused, match="code 2000: bad credentials"):
            send(url)


@pytest.mark.parametrize(
    ("status", "body", "content_type", "error"),
    [
        (500, b"<html><body>Internal Server Error</body></html>", "text/html", AgencyUnavailable),
        (502, b"<!DOCTYPE html><html>bad gateway</html>", "text/html", AgencyUnavailable),
        (503, b"", "text/plain", AgencyUnavailable),
        (500, soap(ANSWER), "text/xml", AgencyUnavailable),  # an answer with a 500 is not a success
        (404, b"not found", "text/plain", AgencyRefused),
        (400, b"<oops/>", "text/xml", AgencyRefused),
        (429, b"", "text/plain", AgencyUnavailable),
    ],
)
def test_http_errors_without_a_fault(status: int, body: bytes, content_type: str, error: type) -> None:
    with serve(reply_with(status, body, content_type)) as (url, _):
        with pytest.raises(error) as info:
            send(url)
    assert f"HTTP {status}" in info.value.message


# --- answers that are not acceptable -----------------------------------------------------------


BILLION_LAUGHS = (
    b'<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol">'
    + b"".join(b'<!ENTITY lol%d "%s">' % (i, b"&lol%d;" % (i - 1) * 10 if i > 1 else b"&lol;" * 10) for i in range(1, 10))
    + b"]>" + soap("<x>&lol9;</x>")[len(b'<?xml version="1.0" encoding="utf-8"?>'):]
)
EXTERNAL_ENTITY = (
    b'<?xml version="1.0"?><!DOCTYPE s:Envelope [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>'
    + soap("<x>&xxe;</x>")[len(b'<?xml version="1.0" encoding="utf-8"?>'):]
)


@pytest.mark.parametrize(
    ("body", "words"),
    [
        (b"this is not xml", "malformed"),
        (b"", "malformed"),
        (BILLION_LAUGHS, "DOCTYPE"),
        (EXTERNAL_ENTITY, "DOCTYPE"),
        (f'<InquiryAnswer xmlns="{BANK}"/>'.encode(), "not a SOAP 1.1 envelope"),
        (soap(f'<b:ControlAnswer xmlns:b="{BANK}"/>'), "not one {urn:enforcement-gateway:bank:v1}InquiryAnswer"),
        (soap(""), "holds nothing"),
        (soap(ANSWER + ANSWER), "not one"),
    ],
)
def test_unacceptable_answers_are_incoming_invalid_with_the_raw_bytes(body: bytes, words: str) -> None:
    with serve(reply_with(200, body)) as (url, _):
        started = time.monotonic()
        with pytest.raises(IncomingInvalid) as info:
            send(url)
    assert time.monotonic() - started < 2  # nothing was expanded
    assert words in info.value.message
    assert info.value.raw == body
    assert "root:" not in info.value.message  # /etc/passwd never read


def test_a_dtd_on_an_error_status_is_still_refused_as_invalid() -> None:
    with serve(reply_with(500, EXTERNAL_ENTITY)) as (url, _):
        with pytest.raises(IncomingInvalid):
            send(url)


# --- the exchange did not complete -----------------------------------------------------------------


def test_slow_server_is_a_timeout() -> None:
    release = threading.Event()

    def slow(handler: BaseHTTPRequestHandler, body: bytes) -> None:
        release.wait(5)
        reply_with(200, soap(ANSWER))(handler, body)

    with serve(slow) as (url, recorded):
        started = time.monotonic()
        try:
            with pytest.raises(TransportTimeout) as info:
                send(url, timeout_seconds=0.3)
        finally:
            release.set()
    assert time.monotonic() - started < 3
    assert info.value.retryable is True
    assert info.value.__cause__ is None and info.value.__suppress_context__ is True
    assert len(recorded.requests) == 1


def test_closed_port_is_connect_failed() -> None:
    url = f"http://127.0.0.1:{free_port()}/soap/bank/v1"
    with pytest.raises(ConnectFailed) as info:
        send(url)
    assert url in info.value.message
    assert info.value.__cause__ is None


def test_server_that_hangs_up_is_connect_failed() -> None:
    def hang_up(handler: BaseHTTPRequestHandler, _body: bytes) -> None:
        handler.close_connection = True
        handler.connection.shutdown(socket.SHUT_RDWR)

    with serve(hang_up) as (url, _):
        with pytest.raises(ConnectFailed) as info:
            send(url)
    assert info.value.retryable is True
    assert type(info.value).__module__ == "adapters.errors"


# --- what is never sent -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("envelope", "words"),
    [
        (Envelope("m-1", "Transfer", REQUEST, "application/xml"), "operation 'Transfer' is not in the WSDL (known: Control, Inquire)"),
        (Envelope("m-1", "Control", REQUEST, "application/xml"), "takes {urn:enforcement-gateway:bank:v1}ControlRequest"),
        (Envelope("m-1", "Inquire", b"<not-closed>", "application/xml"), "not XML we send"),
        (Envelope("m-1", "Inquire", b'<!DOCTYPE x [<!ENTITY a "b">]><x>&a;</x>', "application/xml"), "DOCTYPE"),
    ],
)
def test_bad_outgoing_messages_are_never_sent(envelope: Envelope, words: str) -> None:
    with serve(reply_with(200, soap(ANSWER))) as (url, recorded):
        with pytest.raises(OutgoingInvalid) as info:
            send(url, envelope)
    assert words in info.value.message
    assert recorded.requests == []


@pytest.mark.parametrize(
    ("kwargs", "words"),
    [
        ({"wsdl": "/nonexistent/bank.wsdl"}, "does not exist"),
        ({"wsdl": __file__}, "cannot be used"),
        ({"wsdl": WSDL, "endpoint": "ftp://127.0.0.1/x"}, "http:// or https://"),
        ({"wsdl": WSDL, "timeout_seconds": 0}, "timeout_seconds"),
        ({"wsdl": WSDL, "username": "u"}, "both username and password"),
        ({"wsdl": WSDL, "client_key": "/k.pem"}, "client_key needs client_cert"),
    ],
)
def test_bad_construction_is_a_clear_value_error(kwargs: dict, words: str) -> None:
    arguments = {"endpoint": "http://127.0.0.1:1/x", "timeout_seconds": 5, **kwargs}
    with pytest.raises(ValueError, match=words):
        SoapTransport(arguments.pop("endpoint"), **arguments)


def test_every_error_is_an_adapter_error() -> None:
    for status, body in ((200, b"junk"), (500, fault("s:Server", "x")), (400, fault("s:Client", "y"))):
        with serve(reply_with(status, body)) as (url, _):
            with pytest.raises(AdapterError) as info:
                send(url)
        assert type(info.value).__module__ == "adapters.errors"
