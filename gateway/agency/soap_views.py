"""The gateway's SOAP service for agencies that poll (schemas/wsdl/pull-v1.wsdl,
docs/agencies/pull.md), at ``/api/v1/agency/soap``.

* ``GET ?wsdl``: the WSDL, its address set to the URL served and its XSD import
  pointed at ``?xsd=pull-v1``; ``GET ?xsd=pull-v1``: the XSD.
* ``POST``: one SOAP 1.1 envelope (``schemas.soap``: hardened parser, no
  DOCTYPE). The payload is checked against pull-v1.xsd on the way in and every
  answer before it leaves. The caller proves who it is with a WS-Security
  UsernameToken (PasswordText, over TLS only) checked against the pull agency
  whose ``options.username`` matches, or with its JWT (``Authorization: Bearer``,
  role agency). What it may do is gateway/agency/services.py, shared with the
  JSON agency API.

Faults carry ``PullFault`` (RESPONSECODE, RESPONSEINFO): soap:Client 3000 bad
input, 2000 bad credentials (or a UsernameToken over plain HTTP), 2010 bad token
or a caller that may not poll, 2020 too many failed logins (429, Retry-After),
4040 no such request for the caller; soap:Server
1000 try later. Every fault is audited as a refused call (unauthenticated ones
aggregated per source, like the JSON API's 401s).

Not in the OpenAPI document: a plain blueprint, the WSDL is its contract.
"""

from __future__ import annotations

import logging
from typing import Any

from flask import Blueprint, Flask, Response, current_app, g, request
from lxml import etree
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session
from werkzeug.exceptions import HTTPException

from gateway.agency import pull_messages as msg
from gateway.agency import services
from gateway.api import audit_refusal
from gateway.auditing.log import get_audit
from gateway.auth import lockout
from gateway.auth.access import current_principal
from gateway.auth.passwords import PasswordChecker
from gateway.auth.tokens import Principal
from gateway.db import get_db
from gateway.errors import Forbidden, GatewayError, NotFound, Unauthenticated
from gateway.timeutil import utc_now
from schemas import xml
from schemas.soap import (
    PASSWORD_TEXT,
    SOAP_CONTENT_TYPE,
    SoapFault,
    UsernameToken,
    check_action,
    fault_envelope,
    imported_xsds,
    parse_envelope,
    read_wsdl_operations,
    reply_envelope,
    served_wsdl,
)

log = logging.getLogger(__name__)

PATH = "/api/v1/agency/soap"
WSDL_PATH = xml.WSDL_DIR / "pull-v1.wsdl"
_OPERATIONS, _FAULT_ELEMENT = read_wsdl_operations(WSDL_PATH)
_XSDS = imported_xsds(WSDL_PATH)
EXTENSION = "pull_passwords"
LOGIN_POLICY = "pull_login_policy"

blp = Blueprint("agency_soap", __name__)


@blp.route(PATH, methods=["GET"])
def describe() -> Response:
    if "wsdl" in request.args:
        return Response(served_wsdl(WSDL_PATH, request.base_url), content_type="text/xml; charset=utf-8")
    if "xsd" in request.args:
        path = _XSDS.get(request.args["xsd"])
        if path is None:
            return Response(f"unknown schema; this service has {', '.join(_XSDS)}", status=404, content_type="text/plain")
        return Response(path.read_bytes(), content_type="text/xml; charset=utf-8")
    return Response("GET ?wsdl for the service description", status=404, content_type="text/plain")


@blp.route(PATH, methods=["POST"])
def call() -> Response:
    try:
        root = _answer()
    except SoapFault as fault:
        return _fault(fault)
    except HTTPException as error:  # the body too large, mostly
        return _fault(SoapFault("Client", f"{error.name}: {error.description}", 400))
    except OperationalError:
        log.exception("database busy or unreachable on a pull-service call")
        return _fault(SoapFault("Server", "the gateway cannot answer now (code 1000): try again later", 503, "1000"))
    except Exception:
        log.exception("the pull service failed")
        return _fault(SoapFault("Server", "the gateway failed (code 1000); the error is logged: try again later",
                                500, "1000"))
    return Response(reply_envelope(root), content_type=SOAP_CONTENT_TYPE)


def _fault(fault: SoapFault) -> Response:
    audit_refusal(fault.status, f"soap_{fault.agency_code}", fault.reason)
    headers = {"Retry-After": str(fault.retry_after_seconds)} if fault.retry_after_seconds is not None else {}
    return Response(fault_envelope(fault, _FAULT_ELEMENT), status=fault.status, content_type=SOAP_CONTENT_TYPE,
                    headers=headers)


def _authenticate(token: UsernameToken | None) -> Principal:
    """The calling agency, from its JWT or its UsernameToken. Raises SoapFault 2000/2010."""
    registry = current_app.extensions["registry"]
    if request.headers.get("Authorization"):
        try:
            principal = current_principal()
        except Unauthenticated as error:
            raise SoapFault("Client", f"bad token (code 2010): {error.message}", 401, "2010") from None
        if principal.role != "agency":
            raise SoapFault("Client", f"bad token (code 2010): role {principal.role} may not poll", 403, "2010")
        return principal
    if token is None:
        raise SoapFault("Client", "no credentials (code 2000): send a WS-Security UsernameToken over TLS, "
                        "or Authorization: Bearer <the agency's token>", 401, "2000")
    if not request.is_secure:
        raise SoapFault("Client", "a UsernameToken is accepted over TLS only (code 2000): call the https:// "
                        "address; the password sent over plain HTTP should be changed", 401, "2000")
    if token.password_type not in ("", PASSWORD_TEXT):
        raise SoapFault("Client", "bad credentials (code 2000): only the PasswordText UsernameToken is accepted", 401,
                        "2000")
    return _log_in(token, registry)


def _log_in(token: UsernameToken, registry: Any) -> Principal:
    """The UsernameToken checked, unless its user name or the caller's address is
    locked out after too many failures (gateway/auth/lockout.py). An unknown user
    name costs the same hash as a wrong password; each failure is counted and audited."""
    policy, now, db = current_app.extensions[LOGIN_POLICY], current_app.extensions["clock"](), get_db()
    with db.reading() as session:
        locked = lockout.check_lockout(session, token.username, request.remote_addr, policy, now)
    if locked is not None:
        raise SoapFault("Client", f"too many failed logins (code 2020): {locked.reason}; try again in "
                        f"{locked.retry_after_seconds} s", 429, "2020", retry_after_seconds=locked.retry_after_seconds)
    hashed = [a for a in registry if a.mode == "pull" and "password_hash" in a.options]
    agency = next((a for a in hashed if a.options.get("username") == token.username), None)
    checker: PasswordChecker = current_app.extensions[EXTENSION]
    if agency is None:
        accepted = checker.check_unknown(token.password, str(hashed[0].options["password_hash"]) if hashed else None)
    else:
        accepted = checker.check(token.password, str(agency.options["password_hash"]))
    if not accepted or agency is None:  # an unknown name never passes
        with db.transaction() as session:
            counts = lockout.record_failure(session, token.username, request.remote_addr, policy, now)
            get_audit().record(session, action="agency.login", outcome="failed", details={
                "username": lockout.audited_name(token.username), "source": lockout.source_key(request.remote_addr),
                "failures_in_window": {"user_name": counts.user_failures, "source": counts.source_failures},
                "limits": {"user_name": policy.per_user, "source": policy.per_source},
            })
        raise SoapFault("Client", "bad credentials (code 2000): unknown user name or wrong password", 401, "2000")
    g.principal = Principal(sub=token.username, role="agency", agency=agency.id)
    return g.principal


def _answer() -> etree._Element:
    payload, token = parse_envelope(request.get_data(cache=False))
    tag = str(payload.tag)  # a parsed element's tag is text
    operation = _OPERATIONS.get(tag)
    if operation is None:
        raise SoapFault("Client", f"no operation takes {tag} (code 3000)", 400)
    check_action(request.headers.get("SOAPAction"), operation)
    try:
        payload = xml.parse_valid(xml.serialize(payload), msg.SCHEMA)
    except xml.XmlInvalid as error:
        raise SoapFault("Client", f"{operation.name} (code 3000): {error}", 400) from None
    principal = _authenticate(token)
    try:
        root = _operate(operation.name, payload, principal)
    except NotFound as error:
        raise SoapFault("Client", f"{error.message} (code 4040)", 404, "4040") from None
    except Forbidden as error:
        raise SoapFault("Client", f"{error.message} (code 2010)", 403, "2010") from None
    except GatewayError as error:
        raise SoapFault("Client", f"{error.message} (code 3000)", 400) from None
    try:
        xml.validate(root, msg.SCHEMA)
    except xml.XmlInvalid as error:  # our own bug: never send an answer that breaks the contract
        log.error("pull service answer to %s breaks %s: %s", operation.name, msg.SCHEMA, error)
        raise SoapFault("Server", "the gateway could not build a valid answer (code 1000): try again later", 500,
                        "1000") from None
    return root


def _context(principal: Principal) -> dict[str, Any]:
    return {"principal": principal, "registry": current_app.extensions["registry"], "audit": get_audit()}


def _operate(name: str, payload: etree._Element, principal: Principal) -> etree._Element:
    now = utc_now()
    if name in msg.LISTS:
        return _list(name, payload, principal, now)
    if name in msg.DOCUMENTS:
        with get_db().transaction() as session:
            documents = services.request_documents(session, msg.request_key(payload), kind=msg.DOCUMENTS[name],
                                                   **_context(principal))
            root, data = msg.answer(name, now, f"{len(documents)} document(s)")
            for d in documents:
                msg.add_document(data, position=d.position, name=d.name, media_type=d.document.media_type,
                                 content=d.document.content, md5=d.document.md5, sha256=d.document_sha256)
        return root
    if name == "zjInfo":
        with get_db().transaction() as session:
            credentials = services.request_credentials(session, msg.request_key(payload), **_context(principal))
            root, data = msg.answer(name, now, f"{len(credentials)} credential(s)")
            for c in credentials:
                msg.add_credential(
                    data, name=c.name, court_code=c.court_code, work_card_number=c.work_card_number,
                    duty_card_number=c.duty_card_number,
                    work_card=(c.work_card_image.media_type, c.work_card_image.content, c.work_card_image.md5),
                    duty_card=(c.duty_card_image.media_type, c.duty_card_image.content, c.duty_card_image.md5))
        return root
    if name in msg.FEEDS:
        return _feed(name, payload, principal, now)
    if name == "htInfo":
        with get_db().transaction() as session:
            ack = services.send_back(session, msg.request_key(payload), msg.send_back_reason(payload), now=now,
                                     **_context(principal))
        root, data = msg.answer(name, now, "sent back" if ack.accepted else "not sent back")
        msg.add_acks(data, [(ack.key, ack.accepted, ack.info)])
        return root
    raise SoapFault("Client", f"operation {name} is not served here (code 3000)", 400)


def _list(name: str, payload: etree._Element, principal: Principal, now: Any) -> etree._Element:
    with get_db().transaction() as session:
        rows = services.list_pending(session, kind=msg.LISTS[name], limit=msg.batch_size(payload), now=now, via="soap",
                                     **_context(principal))
        counts = services.document_counts(session, [d.request_id for d in rows])
        root, data = msg.answer(name, now, f"{len(rows)} request(s)")
        for d in rows:
            msg.add_pending(data, key=d.id, kind=services.kind_of(d.action), action=d.action,
                            accepted_at=d.accepted_at, deadline=d.deadline, documents=counts.get(d.request_id, 0),
                            sha256=d.request_sha256 or "", body=d.request_body)
    return root


def _feed(name: str, payload: etree._Element, principal: Principal, now: Any) -> etree._Element:
    """The rows recorded in one transaction; should that fail, each row in its own, so
    one row's failure never undoes the others."""
    codecs, policy = current_app.extensions["codecs"], current_app.extensions["retry_policy"]
    services.pull_agency(principal, current_app.extensions["registry"])  # a push agency is refused whole
    rows = list(msg.feed_rows(payload))
    readable = [(key, body) for key, body in rows if body is not None]
    context = _context(principal)

    def feed(session: Session, fed: list[tuple[str, bytes]]) -> list[services.Ack]:
        return services.feed_results(session, fed, kind=msg.FEEDS[name], codecs=codecs, now=now,
                                     policy=policy, **context)
    try:
        with get_db().transaction() as session:
            acks = feed(session, readable)
    except Exception:
        log.exception("a fed batch could not be recorded whole: recording its rows one by one")
        acks = []
        for row in readable:
            try:
                with get_db().transaction() as session:
                    acks += feed(session, [row])
            except Exception:
                log.exception("a fed-back result could not be recorded")
                acks.append(services.Ack(row[0], False, "not recorded: the gateway could not record it now (code 1000); "
                                                        "feed it again"))
    acks += [services.Ack(key, False, "refused: FKNR is not base64") for key, body in rows if body is None]
    accepted = sum(1 for ack in acks if ack.accepted)
    root, data = msg.answer(name, now, f"{accepted} of {len(acks)} row(s) accepted")
    msg.add_acks(data, [(ack.key, ack.accepted, ack.info) for ack in acks])
    return root


def init_app(app: Flask) -> None:
    app.extensions[EXTENSION] = PasswordChecker()
    app.extensions[LOGIN_POLICY] = lockout.LoginPolicy.from_settings(app.config["SETTINGS"].auth)
    app.register_blueprint(blp)
