"""Shared by the pull-service tests: a registry of two polling banks, SOAP envelopes
of the pull contract, and reading its answers."""

from __future__ import annotations

import base64
from dataclasses import dataclass
from typing import Any

from lxml import etree

from gateway.auth.passwords import hash_password
from gateway.registry import Registry, parse_agency
from schemas import xml

NS = "urn:enforcement-gateway:pull:v1"
SOAP_ENV = "http://schemas.xmlsoap.org/soap/envelope/"
WSSE = "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-secext-1.0.xsd"
PASSWORD_TEXT = "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-username-token-profile-1.0#PasswordText"
SOAP_PATH = "/api/v1/agency/soap"
PASSWORD = "correct horse battery staple"
OTHER_PASSWORD = "another bank's password"


def bank_entry(agency_id: str, username: str, password: str, refetch: int = 600, deadline: int = 600) -> dict:
    actions = ["inquiry", "freeze", "renew", "unfreeze", "deduct"]
    return {
        "id": agency_id, "kind": "bank", "name": f"{agency_id} (polls)", "transport": "soap", "mode": "pull",
        "categories": ["deposit", "wealth_product"], "actions": actions,
        "deadlines": {a: deadline for a in actions},
        "options": {"username": username, "password_hash": hash_password(password, n=2**10),
                    "refetch_after_seconds": refetch},
    }


def pull_registry(refetch: int = 600, deadline: int = 600) -> Registry:
    """Two polling banks: ``bank-pull`` (user ``bank-pull-user``) and ``bank-other``."""
    return Registry([
        parse_agency(bank_entry("bank-pull", "bank-pull-user", PASSWORD, refetch, deadline), "test", 0),
        parse_agency(bank_entry("bank-other", "bank-other-user", OTHER_PASSWORD, refetch, deadline), "test", 1),
    ], "test")


def envelope(operation: str, body: str = "", *, username: str | None = None, password: str | None = None) -> bytes:
    header = ""
    if username is not None:
        header = (f'<soap:Header><wsse:Security xmlns:wsse="{WSSE}"><wsse:UsernameToken>'
                  f"<wsse:Username>{username}</wsse:Username>"
                  f'<wsse:Password Type="{PASSWORD_TEXT}">{password}</wsse:Password>'
                  "</wsse:UsernameToken></wsse:Security></soap:Header>")
    return (f'<?xml version="1.0" encoding="UTF-8"?><soap:Envelope xmlns:soap="{SOAP_ENV}">{header}'
            f'<soap:Body><p:{operation} xmlns:p="{NS}">{body}</p:{operation}></soap:Body></soap:Envelope>').encode()


def feed_body(rows: list[tuple[str, bytes]]) -> str:
    return "<p:Data>" + "".join(
        f"<p:FK><p:BDHM>{key}</p:BDHM><p:FKNR>{base64.b64encode(answer).decode()}</p:FKNR></p:FK>"
        for key, answer in rows) + "</p:Data>"


@dataclass
class Answer:
    status: int
    payload: etree._Element  # the Body's element: <op>Response or soap:Fault

    @property
    def is_fault(self) -> bool:
        return etree.QName(self.payload).localname == "Fault"

    @property
    def code(self) -> str:
        if self.is_fault:
            return self.payload.findtext(f"detail/{{{NS}}}PullFault/{{{NS}}}RESPONSECODE")
        return self.payload.findtext(f"{{{NS}}}Head/{{{NS}}}RESPONSECODE")

    @property
    def info(self) -> str:
        if self.is_fault:
            return self.payload.findtext("faultstring")
        return self.payload.findtext(f"{{{NS}}}Head/{{{NS}}}RESPONSEINFO")

    def rows(self, local: str) -> list[dict[str, Any]]:
        found = []
        for row in self.payload.iterfind(f"{{{NS}}}Data/{{{NS}}}{local}"):
            found.append({etree.QName(c).localname: (c.text if len(c) == 0 else c) for c in row})
        return found


def read(status: int, raw: bytes) -> Answer:
    """Parse an answer; a non-fault answer must validate against pull-v1.xsd."""
    root = xml.parse(raw)
    assert etree.QName(root) == etree.QName(SOAP_ENV, "Envelope")
    (payload,) = list(root.find(f"{{{SOAP_ENV}}}Body"))
    if etree.QName(payload).localname != "Fault":
        xml.validate(etree.fromstring(xml.serialize(payload)), "pull-v1")
    else:
        detail = payload.find(f"detail/{{{NS}}}PullFault")
        xml.validate(etree.fromstring(xml.serialize(detail)), "pull-v1")
    return Answer(status, payload)
