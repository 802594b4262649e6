"""adapters.transports.soap over HTTPS on loopback with a throwaway CA: the
agency's certificate is verified against the CA given, and a client certificate
is presented when the agency asks for one (mutual TLS)."""

from __future__ import annotations

import datetime
import ipaddress
import ssl
import threading
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Iterator

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from adapters.errors import ConnectFailed
from adapters.interfaces import Envelope
from adapters.transports.soap import SoapTransport
from schemas.xml import WSDL_DIR

WSDL = str(WSDL_DIR / "bank-v1.wsdl")
BANK = "urn:enforcement-gateway:bank:v1"
SOAP_ENV = "http://schemas.xmlsoap.org/soap/envelope/"
REQUEST = (
    f'<InquiryRequest xmlns="{BANK}"><Head><BDHM>m-1</BDHM><XZ>1</XZ><CJSJ>2026-11-23T10:00:00Z</CJSJ>'
    "<FYDM>330102</FYDM><CBR>officer.wang</CBR><AH>A1</AH></Head>"
    "<Data><XM>张三</XM><ZJLX>1</ZJLX><DSRZJHM>330102198703151157</DSRZJHM><CXNR>CK</CXNR></Data></InquiryRequest>"
).encode("utf-8")
ENVELOPE = Envelope("m-1", "Inquire", REQUEST, "application/xml")
ANSWER = (f'<s:Envelope xmlns:s="{SOAP_ENV}"><s:Body><InquiryAnswer xmlns="{BANK}"/></s:Body></s:Envelope>').encode()


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _issue(subject: str, issuer_key, issuer_name: x509.Name | None, *, ca: bool = False, usage=None):
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.timezone.utc)
    builder = (
        x509.CertificateBuilder().subject_name(_name(subject)).issuer_name(issuer_name or _name(subject))
        .public_key(key.public_key()).serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5)).not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    if usage is not None:
        builder = builder.add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
    if usage == ExtendedKeyUsageOID.SERVER_AUTH:
        builder = builder.add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
    return key, builder.sign(issuer_key or key, hashes.SHA256())


def _write(directory: Path, name: str, key, certificate) -> tuple[str, str]:
    cert_path, key_path = directory / f"{name}.pem", directory / f"{name}.key"
    cert_path.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return str(cert_path), str(key_path)


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    directory = tmp_path_factory.mktemp("pki")
    ca_key, ca = _issue("test agency CA", None, None, ca=True)
    server_key, server = _issue("127.0.0.1", ca_key, ca.subject, usage=ExtendedKeyUsageOID.SERVER_AUTH)
    client_key, client = _issue("court gateway", ca_key, ca.subject, usage=ExtendedKeyUsageOID.CLIENT_AUTH)
    ca_path, _ = _write(directory, "ca", ca_key, ca)
    server_cert, server_key_path = _write(directory, "server", server_key, server)
    client_cert, client_key_path = _write(directory, "client", client_key, client)
    return {"ca": ca_path, "server_cert": server_cert, "server_key": server_key_path,
            "client_cert": client_cert, "client_key": client_key_path}


@contextmanager
def https_agency(pki: dict[str, str], *, require_client_cert: bool) -> Iterator[tuple[str, list]]:
    peers: list = []

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_POST(self) -> None:  # noqa: N802
            self.rfile.read(int(self.headers.get("Content-Length", 0)))
            peers.append(self.connection.getpeercert())
            self.send_response(200)
            self.send_header("Content-Type", "text/xml; charset=utf-8")
            self.send_header("Content-Length", str(len(ANSWER)))
            self.end_headers()
            self.wfile.write(ANSWER)

        def log_message(self, *args) -> None:
            pass

    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(pki["server_cert"], pki["server_key"])
    if require_client_cert:
        context.verify_mode = ssl.CERT_REQUIRED
        context.load_verify_locations(pki["ca"])
    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
    thread.start()
    try:
        yield f"https://127.0.0.1:{server.server_address[1]}/soap/bank/v1", peers
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def send(url: str, **options):
    transport = SoapTransport(url, timeout_seconds=5, wsdl=WSDL, **options)
    try:
        return transport.send(ENVELOPE)
    finally:
        transport.close()


def test_the_agency_certificate_is_verified_against_the_ca_given(pki) -> None:
    with https_agency(pki, require_client_cert=False) as (url, _):
        assert send(url, verify=pki["ca"]).status == 200
        with pytest.raises(ConnectFailed, match="SSLError"):
            send(url)  # the system's CAs do not know the agency's


def test_a_client_certificate_is_presented_when_configured(pki) -> None:
    with https_agency(pki, require_client_cert=True) as (url, peers):
        assert send(url, verify=pki["ca"], client_cert=pki["client_cert"], client_key=pki["client_key"]).status == 200
        assert dict(peers[0]["subject"][0])["commonName"] == "court gateway"
        with pytest.raises(ConnectFailed):
            send(url, verify=pki["ca"])  # no client certificate: the agency hangs up the handshake


# The REST transport takes the same TLS settings from the registry.


def send_rest(url: str, **options):
    from adapters.transports.rest import RestTransport

    transport = RestTransport(url, timeout_seconds=5, **options)
    try:
        return transport.send(Envelope("m-1", "inquiries", b"{}", "application/json"))
    finally:
        transport.close()


def test_rest_verifies_the_agency_against_the_ca_given_and_presents_a_client_certificate(pki) -> None:
    with https_agency(pki, require_client_cert=True) as (url, peers):
        assert send_rest(url, verify=pki["ca"], client_cert=pki["client_cert"], client_key=pki["client_key"]).status == 200
        assert dict(peers[0]["subject"][0])["commonName"] == "court gateway"
        with pytest.raises(ConnectFailed):
            send_rest(url, verify=pki["ca"])  # no client certificate
    with https_agency(pki, require_client_cert=False) as (url, _):
        with pytest.raises(ConnectFailed):
            send_rest(url)  # the system's CAs do not know the agency's
