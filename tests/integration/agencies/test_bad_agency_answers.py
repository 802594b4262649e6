"""An agency that answers wrongly over SOAP: the answer is quarantined whole, the
delivery says why (the rule broken and the line), the audit log records it, and
nothing of it is applied."""

from __future__ import annotations

from dataclasses import replace

import pytest
from flask import Flask

from conftest import audit_rows
from gateway.deliveries.models import Asset, QuarantinedMessage
from gateway.registry import Registry, load_registry
from gateway.settings import CONFIG_DIR
from sandboxes.bank import BankAgency
from sandboxes.server import SandboxServer
from sandboxes.soap_service import create_soap_app
from schemas.xml import WSDL_DIR

BOMB = (b'<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;">]>'
        b"<lolz>&lol2;</lolz>")


def _bank_answering(change):
    """A real bank behind a real SOAP service, whose answers ``change`` spoils; ``change``
    returning a whole document (starting ``<?xml``) replaces the SOAP response itself."""
    bank = BankAgency("Bank A", 1)
    if change(b"").startswith(b"<?xml"):
        app = Flask("hostile-agency")
        app.add_url_rule("/bank-a/soap", "soap", lambda: (change(b""), 200, {"Content-Type": "text/xml; charset=utf-8"}),
                         methods=["POST"])
    else:
        app = create_soap_app(wsdl_path=WSDL_DIR / "bank-v1.wsdl", prefix="/bank-a/soap",
                              handle=lambda message: change(bank.handle(message)))
    return SandboxServer(app).start()


@pytest.fixture
def spoiled(request, overrides):
    from gateway.app import create_app

    server = _bank_answering(request.param)
    agency = replace(load_registry(CONFIG_DIR / "agencies.toml").get("bank-a"), endpoint=server.url + "/bank-a/soap")
    application = create_app(overrides, registry=Registry([agency], str(CONFIG_DIR / "agencies.toml")))
    yield application
    application.extensions["db"].dispose()
    server.stop()


def _inquire(api, application):
    assert api.register_case().status_code == 201
    request_id = api.inquire().json()["id"]
    application.extensions["worker"].drain()
    return api.get(f"/api/v1/requests/{request_id}").json()


def _drop_balance(answer: bytes) -> bytes:
    # YE (balance) is required by bank-v1.xsd: the answer breaks its schema.
    import re

    return re.sub(rb"<([a-zA-Z0-9]+:)?YE>[^<]*</([a-zA-Z0-9]+:)?YE>", b"", answer, count=1)


@pytest.fixture
def app(spoiled):
    return spoiled


@pytest.mark.parametrize("spoiled", [_drop_balance], indirect=True)
def test_an_answer_that_breaks_the_xsd_is_quarantined_with_its_line(api, app):
    state = _inquire(api, app)
    (delivery,) = state["deliveries"]
    assert delivery["state"] == "failed", delivery
    assert delivery["error"].startswith("incoming_invalid: answer breaks bank-v1: line ")
    assert "YE" in delivery["error"] or "KYYE" in delivery["error"]
    with app.extensions["db"].reading() as session:
        (kept,) = session.query(QuarantinedMessage).all()
        assert b"BDHM" in kept.body and session.query(Asset).count() == 0
    (event,) = [e for e in audit_rows(app) if e.action == "delivery.attempt"]
    assert event.outcome == "failed" and "breaks bank-v1" in event.details["error"]


@pytest.mark.parametrize("spoiled", [lambda answer: BOMB], indirect=True)
def test_an_answer_with_a_dtd_is_refused_unexpanded(api, app):
    state = _inquire(api, app)
    (delivery,) = state["deliveries"]
    assert delivery["state"] == "failed"
    assert delivery["error"].startswith("incoming_invalid") and "DOCTYPE" in delivery["error"], delivery
    assert delivery["attempts"] == 1  # refused, not retried
    with app.extensions["db"].reading() as session:
        assert session.query(Asset).count() == 0
