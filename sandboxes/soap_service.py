"""A small SOAP 1.1 service (document/literal) for the agency sandboxes.

Spyne does not import on current Pythons, so an agency's SOAP face is a Flask
app that serves its WSDL and answers envelopes parsed with the hardened parser
(``schemas.soap``, over ``schemas.xml``). It knows nothing of banks or tax: it reads the operations
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

from sandboxes.server import FaultInjector, FaultKnobs
from schemas import xml
from schemas.soap import (
    SOAP_CONTENT_TYPE,
    SoapFault,
    SoapOperation,
    UsernameToken,
    check_action,
    fault_envelope,
    imported_xsds,
    parse_envelope,
    read_wsdl_operations,
    reply_envelope,
    served_wsdl,
)

MAX_BODY_BYTES = 256 * 1024
SERVICE_KEY = "soap_service"


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

    def accepted(self, token: UsernameToken | None, payload_digest: str) -> None:
        """One call past its checks: who it said it was, and what it carried."""
        with self._lock:
            self.security.append(None if token is None else {"username": token.username,
                                                              "password_type": token.password_type})
            self.received_digests.append(payload_digest)


def fault_response(fault: SoapFault, fault_element: str | None) -> Response:
    return Response(fault_envelope(fault, fault_element), status=fault.status, content_type=SOAP_CONTENT_TYPE)


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

    @app.route(prefix, methods=["GET", "POST"])
    def service() -> Response:
        if request.method == "GET":
            if "wsdl" in request.args:
                return Response(served_wsdl(wsdl_path, request.base_url), content_type="text/xml; charset=utf-8")
            if "xsd" in request.args:
                return _served_xsd(wsdl_path, request.args["xsd"])
            return Response("GET ?wsdl for the service description", status=404, content_type="text/plain")
        return _answer(state, operations, credentials, handle)

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


def _served_xsd(wsdl_path: Path, name: str) -> Response:
    """One of the XSDs the WSDL imports, by name; any other name is a 404."""
    allowed = imported_xsds(wsdl_path)
    if name not in allowed:
        return Response("unknown schema", status=404, content_type="text/plain")
    return Response(allowed[name].read_bytes(), content_type="text/xml; charset=utf-8")


def _answer(state: SoapServiceState, operations: dict[str, SoapOperation], credentials: tuple[str, str] | None,
            handle: Callable[[bytes], bytes]) -> Response:
    """One POSTed envelope: injected faults first, then the envelope's checks, then the agency's answer."""
    state.count("calls")
    if state.faults.apply():
        state.count("faults_injected")
        raise SoapFault("Server", "temporarily unable to answer (injected failure)", 500, "1000")
    payload, token = parse_envelope(request.get_data(cache=False))
    tag = str(payload.tag)  # a parsed element's tag is text
    operation = operations.get(tag)
    if operation is None:
        raise SoapFault("Client", f"no operation takes {tag}", 400)
    check_action(request.headers.get("SOAPAction"), operation)
    if credentials is not None and (token is None or (token.username, token.password) != credentials):
        raise SoapFault("Client", "bad credentials (WS-Security UsernameToken)", 400, "2000")
    state.accepted(token, xml.digest(payload))
    reply = reply_envelope(xml.parse(handle(xml.serialize(payload))))
    state.count("answered")
    return Response(reply, content_type=SOAP_CONTENT_TYPE)
