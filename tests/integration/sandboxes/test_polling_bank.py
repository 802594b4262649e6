"""The polling bank (sandboxes/polling_bank.py) against the real gateway over TLS:
it lists its requests, fetches documents and credentials, checks each document's
MD5, answers with the bank's ledger and feeds back; a document whose bytes do not
match its MD5 is sent back and the delivery says why. Both databases."""

from __future__ import annotations

import time
import uuid
from decimal import Decimal

import sqlalchemy as sa
from conftest import CASE_NUMBER, DEBTOR, LEGAL_DOCUMENT, LEGAL_PDF
from polling_support import tls_gateway

from audit.models import AuditEvent
from gateway.attachments.models import Document
from sandboxes.polling_bank import DEMO_USERNAME, md5_hex

BASIS = {"kind": "assistance_notice", "number": "(2024)浙0102执1234号之一"}


def freeze_body(targets: list[str], amount: str = "1000.00") -> dict:
    return {"case_number": CASE_NUMBER, "subject": DEBTOR, "action": "freeze", "amount": amount, "legal_basis": BASIS,
            "targets": targets, "documents": [LEGAL_DOCUMENT]}


def propose_and_approve(gateway, body: dict) -> str:
    api = gateway.api
    reply = api.post("/api/v1/requests", json=body, headers={"Idempotency-Key": f"freeze-{uuid.uuid4().hex}"})
    assert reply.status_code == 202, reply.text
    judge = api.token(role="approver", sub="judge.zhao")
    decided = api.post(f"/api/v1/requests/{reply.json()['id']}/approval", json={"decision": "approve"}, token=judge)
    assert decided.status_code == 200, decided.text
    return reply.json()["id"]


def bank_c_deposits(gateway) -> list[dict]:
    report = gateway.api.get(f"/api/v1/cases/{CASE_NUMBER}/subjects/{DEBTOR['id_number']}/assets").json()
    assert report["gaps"] == []
    return [a for a in report["assets"] if a["agency"] == "bank-c" and a["category"] == "deposit"]


def test_the_polling_bank_answers_an_inquiry_and_a_freeze_through_the_tls_gateway(overrides, settings, tmp_path):
    with tls_gateway(overrides, settings, tmp_path) as gateway:
        api = gateway.api
        assert api.register_case().status_code == 201
        api.file_credentials()
        poller = gateway.poller().start()
        try:
            inquiry = gateway.wait_final(api.inquire().json()["id"])
            assert inquiry["state"] == "completed", inquiry
            assert [(d["agency"], d["transport"], d["state"]) for d in inquiry["deliveries"]] == [
                ("bank-c", "soap", "answered")]
            deposits = bank_c_deposits(gateway)
            accounts = poller.bank.holdings(DEBTOR["id_number"]).accounts
            assert sorted(a["identifier"] for a in deposits) == sorted(a.number for a in accounts)
            target = max(deposits, key=lambda a: Decimal(a["balance"]))
            available_before = poller.bank.account(target["identifier"]).available
            assert available_before >= Decimal("1000.00")

            freeze = gateway.wait_final(propose_and_approve(gateway, freeze_body([target["id"]])))
        finally:
            poller.stop()
        assert freeze["state"] == "completed", freeze
        [delivery] = freeze["deliveries"]
        assert (delivery["agency"], delivery["state"]) == ("bank-c", "answered")
        # The bank really froze it, under the delivery's id as BDHM.
        account = poller.bank.account(target["identifier"])
        assert account.available == available_before - Decimal("1000.00")
        assert [f.key for f in account.freezes if f.key] == [delivery["id"]]
        after = {a["identifier"]: a for a in bank_c_deposits(gateway)}[target["identifier"]]
        assert [(c["action"], c["outcome"], c["amount"]) for c in after["controls"]] == [
            ("freeze", "controlled", "1000.00")]

        counters = poller.counters
        assert (counters.answered, counters.sent_back, counters.acks_refused, counters.errors) == (2, 0, 0, 0)
        assert counters.listed == 2
        with gateway.app.extensions["db"].reading() as session:
            fetched = session.scalars(sa.select(AuditEvent).where(AuditEvent.action == "delivery.fetched")).all()
        # Each listing is an access to personal data, audited under the bank's login.
        assert {(e.actor_sub, e.actor_agency) for e in fetched} == {(DEMO_USERNAME, "bank-c")} and len(fetched) == 2


def test_a_document_failing_its_md5_is_sent_back_and_the_delivery_says_why(overrides, settings, tmp_path, backend):
    with tls_gateway(overrides, settings, tmp_path) as gateway:
        api = gateway.api
        assert api.register_case().status_code == 201
        api.file_credentials()
        poller = gateway.poller()
        assert api.inquire().status_code == 202
        gateway.app.extensions["worker"].drain()
        poller.poll_once()  # answers the inquiry
        [target] = [max(bank_c_deposits(gateway), key=lambda a: Decimal(a["balance"]))]
        request_id = propose_and_approve(gateway, freeze_body([target["id"]]))
        gateway.app.extensions["worker"].drain()

        # The stored PDF changes under the gateway's feet (a disk fault, a tampered row):
        # the MD5 the gateway states is the one it stored, the bytes are not.
        corrupted = LEGAL_PDF.replace(b"Count 0", b"Count 9")
        stored_md5 = md5_hex(LEGAL_PDF)
        with gateway.app.extensions["db"].transaction() as session:
            changed = session.execute(sa.update(Document).where(Document.md5 == stored_md5)
                                      .values(content=corrupted)).rowcount
        assert changed == 1
        poller.poll_once()
        poller.stop()

        state = gateway.wait_final(request_id)
        [delivery] = state["deliveries"]
        assert (state["state"], delivery["state"]) == ("failed", "rejected"), state  # no agency carried it out
        for part in ("协助执行通知书.pdf", stored_md5, md5_hex(corrupted), "MD5"):
            assert part in delivery["error"], delivery["error"]
        assert poller.counters.sent_back == 1 and poller.counters.sent_back_reasons[delivery["id"]] in delivery["error"]
        # Nothing was frozen: the bank never answered it.
        assert not [f for f in poller.bank.account(target["identifier"]).freezes if f.key == delivery["id"]]


def test_a_wrong_password_is_refused_and_counted(overrides, settings, tmp_path):
    with tls_gateway(overrides, settings, tmp_path) as gateway:
        assert gateway.api.register_case().status_code == 201
        assert gateway.api.inquire().status_code == 202
        gateway.app.extensions["worker"].drain()
        poller = gateway.poller(password="not the demo password")
        poller.poll_once()
        poller.stop()
        assert poller.counters.listed == 0 and poller.counters.errors == 2
        assert "2000" in poller.counters.last_error


def test_log_in_is_one_round_of_controls_alone_and_raises_on_a_refusal(overrides, settings, tmp_path):
    """What bench/pull.py calls before its clock starts: the first log-in paid, the
    waiting inquiry left for the rounds, and a refused login an exception, not a count."""
    import pytest
    from zeep.exceptions import Fault

    with tls_gateway(overrides, settings, tmp_path) as gateway:
        assert gateway.api.register_case().status_code == 201
        assert gateway.api.inquire().status_code == 202
        gateway.app.extensions["worker"].drain()
        poller = gateway.poller()
        poller.log_in()
        assert (poller.counters.rounds, poller.counters.listed, poller.counters.errors) == (0, 0, 0)
        poller.poll_once()
        assert (poller.counters.listed, poller.counters.answered) == (1, 1)
        poller.stop()
        refused = gateway.poller(password="not the demo password")
        with pytest.raises(Fault, match="code 2000"):
            refused.log_in()
        refused.stop()
        assert refused.counters.errors == 0


def test_with_its_agency_token_the_polling_bank_polls_over_plain_http(overrides, settings):
    """How `gateway serve --with-sandboxes` runs bank-c without TLS: its JWT, not its password."""
    from conftest import Api, make_app

    from gateway.auth.tokens import issue_token
    from sandboxes.polling_bank import PollingBank
    from sandboxes.run import PULL_SERVICE_PATH
    from sandboxes.server import SandboxServer

    app = make_app(overrides, {"bank-c": ""})
    worker = app.extensions["worker"].start()
    server = SandboxServer(app).start()
    api = Api(server.url, settings)
    token = issue_token(settings, role="agency", sub="bank-c-sandbox", agency="bank-c")
    poller = PollingBank(server.url + PULL_SERVICE_PATH + "?wsdl", bearer_token=token, interval_seconds=0.05).start()
    try:
        assert api.register_case().status_code == 201
        request_id = api.inquire().json()["id"]
        state = {}
        give_up = time.monotonic() + 60
        while time.monotonic() < give_up:
            state = api.get(f"/api/v1/requests/{request_id}").json()
            if state["state"] not in ("accepted", "in_progress"):
                break
            time.sleep(0.05)
        assert state["state"] == "completed", state
        assert (poller.counters.answered, poller.counters.errors) == (1, 0)
        with app.extensions["db"].transaction() as session:  # a reader of fresh events integrates the pending first
            app.extensions["audit"].integrate_pending(session)
            fetched = session.scalars(sa.select(AuditEvent).where(AuditEvent.action == "delivery.fetched")).all()
            assert [(e.actor_sub, e.actor_agency) for e in fetched] == [("bank-c-sandbox", "bank-c")]
    finally:
        poller.stop()
        server.stop()
        worker.stop()
        app.extensions["db"].dispose()
