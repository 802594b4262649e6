"""SOAP 1.1 transport: one document/literal call per envelope, addressed by a WSDL.

It knows nothing of agencies. ``envelope.operation`` names a WSDL operation and
``envelope.body`` is the codec's message element (already schema-checked); the
reply body is the SOAP Body's payload element, so a codec reads the same bytes
whether its message came over SOAP or on a line of a batch file.

zeep does what it is for: the WSDL (and the XSDs it imports) is parsed once per
process per file, each thread gets its own client (a requests Session is not
thread-safe), the binding gives each operation's SOAPAction and its input and
output elements, zeep's transport posts with a timeout, and zeep's UsernameToken
signs the header when WS-Security is configured. The codec's element is put in
the Body as it is, never rebuilt from Python objects, so the bytes the agency
hashes are the bytes the codec made. Replies are read with the project's
hardened parser (``schemas.xml``): no DOCTYPE, no entities, no network.

Library exceptions (requests, zeep, lxml) are translated in
``_translated_errors`` and go no further.
"""

from __future__ import annotations

import copy
import logging
import threading
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

import requests
import zeep
from lxml import etree
from zeep.transports import Transport as ZeepTransport
from zeep.wsdl.bindings.soap import Soap11Binding
from zeep.wsse.username import UsernameToken

from adapters.errors import (
    AgencyRefused,
    AgencyUnavailable,
    IncomingInvalid,
    OutgoingInvalid,
    TransportError,
)
from adapters.interfaces import Envelope, Reply
from adapters.transports.http_errors import translated_http_errors
from schemas import xml

SOAP11_ENVELOPE_NS = "http://schemas.xmlsoap.org/soap/envelope/"
SOAP11_CONTENT_TYPE = "text/xml; charset=utf-8"
PAYLOAD_MEDIA_TYPE = "application/xml; charset=utf-8"

# zeep.transports logs every envelope sent and received at DEBUG: those carry
# names and identity numbers. Nothing below WARNING leaves that logger.
logging.getLogger("zeep.transports").setLevel(logging.WARNING)

ZEEP_SETTINGS = zeep.Settings(
    strict=True, forbid_dtd=True, forbid_entities=True, forbid_external=True, xml_huge_tree=False,
)

_documents: dict[Path, zeep.wsdl.Document] = {}
_documents_lock = threading.Lock()


def load_wsdl(path: str | Path) -> zeep.wsdl.Document:
    """The parsed WSDL at ``path``, parsed once per process (thread-safe).

    Raises ValueError naming the file when it is missing or not a usable WSDL.
    """
    resolved = Path(path).resolve()
    with _documents_lock:
        document = _documents.get(resolved)
        if document is not None:
            return document
        if not resolved.is_file():
            raise ValueError(f"WSDL file {str(path)!r} does not exist")
        session = requests.Session()
        session.trust_env = False
        try:
            # Local files only: the WSDL and the XSDs it imports by relative path.
            # zeep annotates `transport` as a class, but takes (and itself passes) an instance.
            document = zeep.wsdl.Document(str(resolved), ZeepTransport(session=session),  # type: ignore[arg-type]
                                          settings=ZEEP_SETTINGS)
        except Exception as exc:  # zeep, lxml and OS errors alike: the file is unusable
            raise ValueError(f"WSDL file {str(path)!r} cannot be used: {type(exc).__name__}: {exc}") from None
        finally:
            session.close()
        _documents[resolved] = document
        return document


@dataclass(frozen=True)
class _Operation:
    soap_action: str
    input_element: etree.QName
    output_element: etree.QName


def _operations(document: zeep.wsdl.Document, wsdl: str) -> dict[str, _Operation]:
    """Every operation of the WSDL's SOAP 1.1 binding(s), by name."""
    found: dict[str, _Operation] = {}
    for service in document.services.values():
        for port in service.ports.values():
            binding = port.binding
            if not isinstance(binding, Soap11Binding):
                continue
            for name, operation in binding.all().items():
                found[name] = _Operation(
                    soap_action=operation.soapaction or "",
                    input_element=etree.QName(operation.input.body.qname.text),
                    output_element=etree.QName(operation.output.body.qname.text),
                )
    if not found:
        raise ValueError(f"WSDL file {wsdl!r} has no SOAP 1.1 document/literal operation")
    return found


@contextmanager
def _translated_errors(url: str) -> Iterator[None]:
    try:
        with translated_http_errors(url, "SOAP exchange"):
            yield
    except zeep.exceptions.Error as exc:
        raise TransportError(f"SOAP exchange with {url} failed: {type(exc).__name__}: {exc}") from None


class SoapTransport:
    def __init__(
        self,
        endpoint: str,
        *,
        timeout_seconds: float,
        wsdl: str,
        verify: bool | str = True,
        client_cert: str | None = None,
        client_key: str | None = None,
        username: str | None = None,
        password: str | None = None,
    ):
        if not endpoint.startswith(("http://", "https://")):
            raise ValueError(f"SOAP endpoint must be an http:// or https:// URL, got {endpoint!r}")
        if not timeout_seconds > 0:
            raise ValueError(f"timeout_seconds must be > 0, got {timeout_seconds!r}")
        if client_key and not client_cert:
            raise ValueError("client_key needs client_cert")
        if (username is None) != (password is None):
            raise ValueError("WS-Security needs both username and password (or neither)")
        self.endpoint = endpoint
        self._timeout = timeout_seconds
        self._document = load_wsdl(wsdl)
        self._operations = _operations(self._document, wsdl)
        self._verify = verify
        self._cert: str | tuple[str, str] | None = (
            (client_cert, client_key) if client_cert and client_key else client_cert)
        self._credentials = (username, password) if username is not None else None
        self._local = threading.local()
        self._sessions: list[requests.Session] = []
        self._sessions_lock = threading.Lock()

    def _client(self) -> zeep.Client:
        """This thread's zeep client over the shared, already parsed WSDL."""
        client = getattr(self._local, "client", None)
        if client is None:
            session = requests.Session()
            session.trust_env = False  # never route agency traffic through a proxy from the environment
            session.verify = self._verify
            session.cert = self._cert
            transport = ZeepTransport(session=session, timeout=self._timeout, operation_timeout=self._timeout)
            wsse = UsernameToken(*self._credentials) if self._credentials else None
            client = zeep.Client(self._document, transport=transport, wsse=wsse, settings=ZEEP_SETTINGS)
            self._local.client = client
            with self._sessions_lock:
                self._sessions.append(session)
        return client

    def send(self, envelope: Envelope) -> Reply:
        operation = self._operations.get(envelope.operation)
        if operation is None:
            raise OutgoingInvalid(
                f"operation {envelope.operation!r} is not in the WSDL (known: {', '.join(sorted(self._operations))})"
            )
        payload = self._payload(envelope, operation)
        client = self._client()
        soap_envelope = etree.Element(etree.QName(SOAP11_ENVELOPE_NS, "Envelope"), nsmap={"soap-env": SOAP11_ENVELOPE_NS})
        etree.SubElement(soap_envelope, etree.QName(SOAP11_ENVELOPE_NS, "Header"))
        etree.SubElement(soap_envelope, etree.QName(SOAP11_ENVELOPE_NS, "Body")).append(payload)
        headers = {"SOAPAction": f'"{operation.soap_action}"', "Content-Type": SOAP11_CONTENT_TYPE}
        if client.wsse is not None:
            soap_envelope, headers = client.wsse.apply(soap_envelope, headers)
        with _translated_errors(self.endpoint):
            response = client.transport.post_xml(self.endpoint, soap_envelope, headers)
            body = response.content
        return _read_reply(response.status_code, response.headers.get("Content-Type", ""), body, operation)

    def _payload(self, envelope: Envelope, operation: _Operation) -> etree._Element:
        """The codec's element, checked to be the operation's input, never sent otherwise."""
        try:
            element = xml.parse(envelope.body)
        except xml.XmlRefused as exc:
            raise OutgoingInvalid(f"message for {envelope.operation} is not XML we send: {exc}") from None
        if etree.QName(element) != operation.input_element:
            raise OutgoingInvalid(
                f"operation {envelope.operation} takes {operation.input_element.text}, "
                f"not {etree.QName(element).text}"
            )
        return element

    def close(self) -> None:
        with self._sessions_lock:
            for session in self._sessions:
                session.close()
            self._sessions.clear()
        self._local = threading.local()


def _status_error(status: int, detail: str = "") -> AgencyUnavailable | AgencyRefused:
    if status >= 500 or status in (408, 429):
        return AgencyUnavailable(f"agency answered HTTP {status}{detail}")
    return AgencyRefused(f"agency refused the message with HTTP {status}{detail}")


def _read_reply(status: int, content_type: str, body: bytes, operation: _Operation) -> Reply:
    """The Body's payload as a Reply, or the adapter error the answer means."""
    success = 200 <= status < 300
    if not success and "xml" not in content_type.lower():
        raise _status_error(status)  # an HTML error page from a proxy, an empty 503...
    try:
        root = xml.parse(body)
    except xml.XmlRefused as exc:
        if success or b"<!doctype" in body[:4096].lower() or b"<!entity" in body[:4096].lower():
            raise IncomingInvalid(f"SOAP answer refused: {exc}", raw=body) from None
        raise _status_error(status) from None
    soap_body = root.find(f"{{{SOAP11_ENVELOPE_NS}}}Body") if etree.QName(root) == etree.QName(SOAP11_ENVELOPE_NS, "Envelope") else None
    if soap_body is None:
        if not success:
            raise _status_error(status)
        raise IncomingInvalid(f"answer is not a SOAP 1.1 envelope (root element {etree.QName(root).text})", raw=body)
    children = [child for child in soap_body if isinstance(child.tag, str)]
    fault = soap_body.find(f"{{{SOAP11_ENVELOPE_NS}}}Fault")
    if fault is not None:
        raise _fault_error(fault, status)
    if not success:
        raise _status_error(status)
    if len(children) != 1 or etree.QName(children[0]) != operation.output_element:
        found = ", ".join(etree.QName(child).text for child in children) or "nothing"
        raise IncomingInvalid(f"SOAP body holds {found}, not one {operation.output_element.text}", raw=body)
    payload = copy.deepcopy(children[0])
    etree.cleanup_namespaces(payload)  # drop the envelope's namespace declarations the payload does not use
    return Reply(status=200, body=xml.serialize(payload), media_type=PAYLOAD_MEDIA_TYPE)


def _fault_error(fault: etree._Element, status: int) -> AgencyUnavailable | AgencyRefused:
    """soap:Server (Receiver) means try later; soap:Client (Sender) and the rest mean refused."""
    code_text = (fault.findtext("faultcode") or "").strip()
    reason = (fault.findtext("faultstring") or "").strip() or "no fault string"
    detail = _fault_detail(fault)
    local = code_text.rsplit(":", 1)[-1]
    kind = local.split(".", 1)[0]
    message = f"SOAP fault {code_text or '(no code)'} (HTTP {status}): {reason}{detail}"
    if kind in ("Server", "Receiver"):
        return AgencyUnavailable(message)
    return AgencyRefused(message)


def _fault_detail(fault: etree._Element) -> str:
    """The agency's code and text from a fault detail, when it gives them."""
    detail = fault.find("detail")
    if detail is None:
        return ""
    texts: dict[str, Any] = {}
    for element in detail.iter():
        if isinstance(element.tag, str) and len(element) == 0 and element.text and element.text.strip():
            texts[etree.QName(element).localname] = element.text.strip()
    code, info = texts.get("RESPONSECODE"), texts.get("RESPONSEINFO")
    if code and info:
        return f" (code {code}: {info})"
    return ""
