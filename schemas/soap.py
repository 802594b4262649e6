"""SOAP 1.1 envelopes (document/literal), for any service that answers them.

Pure: bytes in, elements and bytes out; no HTTP, no agency. Both sides use it:
the agency sandboxes' SOAP faces (``sandboxes.soap_service``) and the gateway's
own service for agencies that poll (``gateway.agency.soap_views``).

* ``parse_envelope``: the hardened parser (``schemas.xml.parse``: no DOCTYPE, no
  entities, no network), then the envelope's shape; returns the one Body payload
  and the WS-Security UsernameToken, if any. Raises ``SoapFault`` (Client).
* ``reply_envelope`` / ``fault_envelope``: the bytes of an answer or a fault
  (with a detail element named by the WSDL, holding RESPONSECODE/RESPONSEINFO).
* ``read_wsdl_operations``: a WSDL's operations by input element, and its fault
  detail element; ``served_wsdl`` / ``imported_xsds``: the WSDL as served at a
  URL, its XSD imports pointed at ``<url>?xsd=<name>``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from lxml import etree

from schemas import xml

SOAP_ENV = "http://schemas.xmlsoap.org/soap/envelope/"
WSDL_NS = "http://schemas.xmlsoap.org/wsdl/"
WSDL_SOAP_NS = "http://schemas.xmlsoap.org/wsdl/soap/"
XSD_NS = "http://www.w3.org/2001/XMLSchema"
WSSE_NS = "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-secext-1.0.xsd"
PASSWORD_TEXT = "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-username-token-profile-1.0#PasswordText"
SOAP_CONTENT_TYPE = "text/xml; charset=utf-8"


@dataclass(frozen=True)
class SoapOperation:
    name: str
    soap_action: str
    input_element: str  # Clark notation {ns}local
    output_element: str


@dataclass(frozen=True)
class UsernameToken:
    """A WS-Security UsernameToken as received (the password in clear: PasswordText)."""

    username: str
    password: str
    password_type: str

    def __repr__(self) -> str:  # never print a password
        return f"UsernameToken(username={self.username!r}, password_type={self.password_type!r})"


class SoapFault(Exception):
    """A fault to answer with: ``code`` Client or Server, the reason for people, the
    HTTP status, and the service's own code for the fault detail (``RESPONSECODE``);
    ``retry_after_seconds`` for a 429, sent as Retry-After."""

    def __init__(self, code: str, reason: str, status: int, agency_code: str = "3000", *,
                 retry_after_seconds: int | None = None):
        super().__init__(reason)
        self.code, self.reason, self.status, self.agency_code = code, reason, status, agency_code
        self.retry_after_seconds = retry_after_seconds


def _wsdl_document(wsdl_path: Path) -> etree._ElementTree:
    # Our own file, parsed without entities or network all the same.
    return etree.parse(str(wsdl_path), etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False))


def _wsdl_child(parent: etree._Element, path: str, ns: dict[str, str], wsdl_path: Path) -> etree._Element:
    child = parent.find(path, ns)
    if child is None:
        raise ValueError(f"{wsdl_path}: {parent.get('name') or etree.QName(parent).localname} has no {path}")
    return child


def _wsdl_attribute(element: etree._Element, name: str, wsdl_path: Path) -> str:
    value = element.get(name)
    if value is None:
        raise ValueError(f"{wsdl_path}: {etree.QName(element).localname} has no {name} attribute")
    return value


def read_wsdl_operations(wsdl_path: Path) -> tuple[dict[str, SoapOperation], str | None]:
    """The operations of a document/literal WSDL by input element, and its fault detail element."""
    root = _wsdl_document(wsdl_path).getroot()
    ns = {"w": WSDL_NS, "s": WSDL_SOAP_NS}

    def element_of(message_ref: str) -> str:
        local = message_ref.split(":", 1)[-1]
        part = _wsdl_child(root, f"w:message[@name='{local}']/w:part", ns, wsdl_path)
        prefix, _, name = _wsdl_attribute(part, "element", wsdl_path).rpartition(":")
        return f"{{{root.nsmap.get(prefix or None, part.nsmap.get(prefix or None))}}}{name}"

    actions = {op.get("name"): _wsdl_child(op, "s:operation", ns, wsdl_path).get("soapAction", "")
               for op in root.iterfind("w:binding/w:operation", ns)}
    operations: dict[str, SoapOperation] = {}
    fault_element = None
    for op in root.iterfind("w:portType/w:operation", ns):
        name = _wsdl_attribute(op, "name", wsdl_path)
        input_element = element_of(_wsdl_attribute(_wsdl_child(op, "w:input", ns, wsdl_path), "message", wsdl_path))
        output_element = element_of(_wsdl_attribute(_wsdl_child(op, "w:output", ns, wsdl_path), "message", wsdl_path))
        operations[input_element] = SoapOperation(name, actions.get(name, ""), input_element, output_element)
        fault = op.find("w:fault", ns)
        if fault is not None:
            fault_element = element_of(_wsdl_attribute(fault, "message", wsdl_path))
    return operations, fault_element


def imported_xsds(wsdl_path: Path) -> dict[str, Path]:
    """The XSD files a WSDL imports, by name (file stem): what ``?xsd=<name>`` may serve."""
    locations = [i.get("schemaLocation") for i in _wsdl_document(wsdl_path).iter(f"{{{XSD_NS}}}import")]
    return {Path(location).stem: (wsdl_path.parent / location).resolve() for location in locations if location}


def served_wsdl(wsdl_path: Path, url: str) -> bytes:
    """The WSDL as served at ``url``: its soap:address set there, each XSD import at ``url?xsd=<name>``."""
    document = _wsdl_document(wsdl_path)
    for address in document.iter(f"{{{WSDL_SOAP_NS}}}address"):
        address.set("location", url)
    for imported in document.iter(f"{{{XSD_NS}}}import"):
        location = imported.get("schemaLocation")
        if location:
            imported.set("schemaLocation", f"{url}?xsd={Path(location).stem}")
    return etree.tostring(document, encoding="UTF-8", xml_declaration=True)


def username_token(header: etree._Element | None) -> UsernameToken | None:
    """The WS-Security UsernameToken in a SOAP Header, if there is one."""
    token = None if header is None else header.find(f"{{{WSSE_NS}}}Security/{{{WSSE_NS}}}UsernameToken")
    if token is None:
        return None
    password = token.find(f"{{{WSSE_NS}}}Password")
    return UsernameToken(
        username=token.findtext(f"{{{WSSE_NS}}}Username") or "",
        password=(password.text or "") if password is not None else "",
        password_type=password.get("Type", "") if password is not None else "",
    )


def parse_envelope(raw: bytes) -> tuple[etree._Element, UsernameToken | None]:
    """The one Body payload of a SOAP 1.1 envelope and its UsernameToken.

    Raises SoapFault (Client, HTTP 400) for malformed XML, a DOCTYPE, a root that
    is not a SOAP 1.1 Envelope, or a Body without exactly one element.
    """
    try:
        envelope = xml.parse(raw)
    except xml.XmlRefused as exc:
        raise SoapFault("Client", f"not an acceptable SOAP message: {exc}", 400) from None
    if etree.QName(envelope) != etree.QName(SOAP_ENV, "Envelope"):
        raise SoapFault("Client", f"root element must be a SOAP 1.1 Envelope, got {etree.QName(envelope).text}", 400)
    body = envelope.find(f"{{{SOAP_ENV}}}Body")
    payload = [child for child in body if isinstance(child.tag, str)] if body is not None else []
    if len(payload) != 1:
        raise SoapFault("Client", "the SOAP Body must hold exactly one element", 400)
    return payload[0], username_token(envelope.find(f"{{{SOAP_ENV}}}Header"))


def check_action(header_value: str | None, operation: SoapOperation) -> None:
    """A SOAPAction header, when sent, must name the operation the payload asks for."""
    action = (header_value or "").strip('"')
    if action and action != operation.soap_action:
        raise SoapFault("Client", f"SOAPAction {action!r} does not fit {operation.name}", 400)


def reply_envelope(payload: etree._Element) -> bytes:
    """An envelope whose Body holds ``payload``."""
    envelope = etree.Element(f"{{{SOAP_ENV}}}Envelope", nsmap={"soap": SOAP_ENV})
    etree.SubElement(envelope, f"{{{SOAP_ENV}}}Body").append(payload)
    return etree.tostring(envelope, encoding="UTF-8", xml_declaration=True)


def fault_envelope(fault: SoapFault, fault_element: str | None) -> bytes:
    """A soap:Fault envelope; with ``fault_element`` ({ns}local), a detail holding it
    with RESPONSECODE (the fault's agency_code) and RESPONSEINFO (its reason)."""
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
    return etree.tostring(envelope, encoding="UTF-8", xml_declaration=True)
