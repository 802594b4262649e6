"""A small SOAP 1.1 service (document/literal) for the agency sandboxes.

Spyne does not import on current Pythons, so an agency's SOAP face is a Flask
app that serves its WSDL and answers envelopes parsed with the hardened parser
(``schemas.xml``). It knows nothing of banks or tax: it reads the operations
(payload element, SOAPAction) from the WSDL file and hands each Body payload's
bytes to the agency's ``handle(bytes) -> bytes``.

* ``GET {prefix}?wsdl``: the WSDL with ``soap:address`` rewritten to the URL it
  is served at and each XSD import pointed at ``{prefix}?xsd=<name>``.
* ``POST {prefix}``: one envelope. Fault knobs first (latency, then a
  ``soap:Server`` fault with HTTP 500 at the failure rate); malformed XML, a
  DOCTYPE, a non-envelope, an unknown payload or a SOAPAction that does not
  fit: ``soap:Client`` fault with HTTP 400; bad WS-Security credentials (when
  the service is given some): ``soap:Client`` fault 401-style code 2000.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from flask import Flask, Response, request
from lxml import etree

from sandboxes.server import FaultInjector, FaultKnobs
from schemas import xml

SOAP_ENV = "http://schemas.xmlsoap.org/soap/envelope/"
WSDL_NS = "http://schemas.xmlsoap.org/wsdl/"
WSDL_SOAP_NS = "http://schemas.xmlsoap.org/wsdl/soap/"
XSD_NS = "http://www.w3.org/2001/XMLSchema"
WSSE_NS = "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-secext-1.0.xsd"
SOAP_CONTENT_TYPE = "text/xml; charset=utf-8"
MAX_BODY_BYTES = 256 * 1024
SERVICE_KEY = "soap_service"


@dataclass(frozen=True)
class SoapOperation:
    name: str
    soap_action: str
    input_element: str  # Clark notation {ns}local
    output_element: str


def read_wsdl_operations(wsdl_path: Path) -> tuple[dict[str, SoapOperation], str | None]:
    """The operations of a document/literal WSDL by input element, and its fault detail element."""
    root = etree.parse(str(wsdl_path), etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False)).getroot()
    ns = {"w": WSDL_NS, "s": WSDL_SOAP_NS}

    def element_of(message_ref: str, context: etree._Element) -> str:
        local = message_ref.split(":", 1)[-1]
        part = root.find(f"w:message[@name='{local}']/w:part", ns)
        prefix, _, name = part.get("element").rpartition(":")
        return f"{{{context.nsmap.get(prefix or None, part.nsmap.get(prefix or None))}}}{name}"

    actions = {op.get("name"): op.find("s:operation", ns).get("soapAction", "")
               for op in root.iterfind("w:binding/w:operation", ns)}
    operations: dict[str, SoapOperation] = {}
    fault_element = None
    for op in root.iterfind("w:portType/w:operation", ns):
        name = op.get("name")
        input_element = element_of(op.find("w:input", ns).get("message"), root)
        output_element = element_of(op.find("w:output", ns).get("message"), root)
        operations[input_element] = SoapOperation(name, actions.get(name, ""), input_element, output_element)
        fault = op.find("w:fault", ns)
        if fault is not None:
            fault_element = element_of(fault.get("message"), root)
    return operations, fault_element


@dataclass
class SoapServiceState:
    """What the service saw; ``app.extensions["soap_service"]``."""

    faults: FaultInjector
    calls: int = 0
    faults_injected: int = 0
    client_faults: int = 0
    answered: int = 0
    # One entry per accepted call: the WS-Security username and password type, or None.
    security: list[dict[str, str] | None] = field(default_factory=list)
    # Digest (schemas.xml.digest) of each Body payload as received, in order.
    received_digests: list[str] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def count(self, attribute: str) -> None:
        with self._lock:
            setattr(self, attribute, getattr(self, attribute) + 1)


class SoapFault(Exception):
    def __init__(self, code: str, reason: str, status: int, agency_code: str = "3000"):
        super().__init__(reason)
        self.code, self.reason, self.status, self.agency_code = code, reason, status, agency_code


def fault_response(fault: SoapFault, fault_element: str | None) -> Response:
    envelope = etree.Element(f"{{{SOAP_ENV}}}Envelope", nsmap={"soap": SOAP_ENV})
    body = etree.SubElement(envelope, f"{{{SOAP_ENV}}}Body")
    element = etree.SubElement(body, f"{{{SOAP_ENV}}}Fault")
    etree.SubElement(element, "faultcode").text = f"soap:{fault.code}"
    etree.SubElement(element, "faultstring").text = fault.reason
    if fault_element is not None:
        detail = etree.SubElement(etree.SubElement(element, "detail"), fault_element)
        namespace = etree.QName(fault_element).namespace
        etree.SubElement(detail, f"{{{namespace}}}RESPONSECODE").text = fault.agency_code
        etree.SubElement(detail, f"{{{namespace}}}RESPONSEINFO").text = fault.reason[:500]
    return Response(etree.tostring(envelope, encoding="UTF-8", xml_declaration=True), status=fault.status,
                    content_type=SOAP_CONTENT_TYPE)


def _security(header: etree._Element | None) -> dict[str, str] | None:
    token = None if header is None else header.find(f"{{{WSSE_NS}}}Security/{{{WSSE_NS}}}UsernameToken")
    if token is None:
        return None
    password = token.find(f"{{{WSSE_NS}}}Password")
    return {
        "username": token.findtext(f"{{{WSSE_NS}}}Username") or "",
        "password": password.text or "" if password is not None else "",
        "password_type": password.get("Type", "") if password is not None else "",
    }


def create_soap_app(
    *,
    wsdl_path: Path,
    prefix: str,
    handle: Callable[[bytes], bytes],
    knobs: FaultKnobs | None = None,
    credentials: tuple[str, str] | None = None,
) -> Flask:
    """A Flask app serving one WSDL at ``prefix`` and answering its operations with ``handle``."""
    if not prefix.startswith("/"):
        raise ValueError(f"prefix must start with '/', got {prefix!r}")
    prefix = prefix.rstrip("/")
    operations, fault_element = read_wsdl_operations(wsdl_path)
    state = SoapServiceState(faults=FaultInjector(knobs))
    app = Flask(__name__)
    app.config["MAX_CONTENT_LENGTH"] = MAX_BODY_BYTES
    app.extensions[SERVICE_KEY] = state

    def served_wsdl() -> bytes:
        document = etree.parse(str(wsdl_path), etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False))
        url = request.base_url
        for address in document.iter(f"{{{WSDL_SOAP_NS}}}address"):
            address.set("location", url)
        for imported in document.iter(f"{{{XSD_NS}}}import"):
            location = imported.get("schemaLocation")
            if location:
                imported.set("schemaLocation", f"{url}?xsd={Path(location).stem}")
        return etree.tostring(document, encoding="UTF-8", xml_declaration=True)

    def served_xsd(name: str) -> Response:
        document = etree.parse(str(wsdl_path), etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False))
        allowed = {Path(i.get("schemaLocation")).stem: (wsdl_path.parent / i.get("schemaLocation")).resolve()
                   for i in document.iter(f"{{{XSD_NS}}}import") if i.get("schemaLocation")}
        if name not in allowed:
            return Response("unknown schema", status=404, content_type="text/plain")
        return Response(allowed[name].read_bytes(), content_type="text/xml; charset=utf-8")

    def answer() -> Response:
        state.count("calls")
        if state.faults.apply():
            state.count("faults_injected")
            raise SoapFault("Server", "temporarily unable to answer (injected failure)", 500, "1000")
        try:
            envelope = xml.parse(request.get_data(cache=False))
        except xml.XmlRefused as exc:
            raise SoapFault("Client", f"not an acceptable SOAP message: {exc}", 400) from None
        if etree.QName(envelope) != etree.QName(SOAP_ENV, "Envelope"):
            raise SoapFault("Client", f"root element must be a SOAP 1.1 Envelope, got {etree.QName(envelope).text}", 400)
        body = envelope.find(f"{{{SOAP_ENV}}}Body")
        payload = [child for child in body if isinstance(child.tag, str)] if body is not None else []
        if len(payload) != 1:
            raise SoapFault("Client", "the SOAP Body must hold exactly one element", 400)
        operation = operations.get(payload[0].tag)
        if operation is None:
            raise SoapFault("Client", f"no operation takes {payload[0].tag}", 400)
        action = (request.headers.get("SOAPAction") or "").strip('"')
        if action and action != operation.soap_action:
            raise SoapFault("Client", f"SOAPAction {action!r} does not fit {operation.name}", 400)
        security = _security(envelope.find(f"{{{SOAP_ENV}}}Header"))
        if credentials is not None and (security is None or (security["username"], security["password"]) != credentials):
            raise SoapFault("Client", "bad credentials (WS-Security UsernameToken)", 400, "2000")
        with state._lock:
            state.security.append(None if security is None else {k: security[k] for k in ("username", "password_type")})
            state.received_digests.append(xml.digest(payload[0]))
        result = xml.parse(handle(xml.serialize(payload[0])))
        reply = etree.Element(f"{{{SOAP_ENV}}}Envelope", nsmap={"soap": SOAP_ENV})
        etree.SubElement(reply, f"{{{SOAP_ENV}}}Body").append(result)
        state.count("answered")
        return Response(etree.tostring(reply, encoding="UTF-8", xml_declaration=True), content_type=SOAP_CONTENT_TYPE)

    @app.route(prefix, methods=["GET", "POST"])
    def service() -> Response:
        if request.method == "GET":
            if "wsdl" in request.args:
                return Response(served_wsdl(), content_type="text/xml; charset=utf-8")
            if "xsd" in request.args:
                return served_xsd(request.args["xsd"])
            return Response("GET ?wsdl for the service description", status=404, content_type="text/plain")
        return answer()

    @app.errorhandler(SoapFault)
    def soap_fault(fault: SoapFault) -> Response:
        if fault.code == "Client":
            state.count("client_faults")
        return fault_response(fault, fault_element)

    @app.errorhandler(413)
    def too_large(_error: Exception) -> Response:
        state.count("client_faults")
        return fault_response(SoapFault("Client", f"message larger than {MAX_BODY_BYTES} bytes", 400), fault_element)

    return app
