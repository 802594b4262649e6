"""What the gateway does on its own after a control: releasing freezes above what is
still owed, reconciling deducts with the money that arrived, and repeat freezes
that try again daily for a shortfall. Through the API down to the sandbox banks;
days pass by moving the app's clock and running the housekeeping sweep.
"""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest

from conftest import COURT, LEGAL_PDF, audit_rows
from gateway.attachments.services import credentials_of, documents_of
from gateway.requests.models import Request
from gateway.timeutil import utc_now
from test_agency_actions import (  # noqa: F401 (fixtures)
    BASIS, CASE, DEBTOR, agencies, app, control, court, inquire, report, settle, submit,
)
from test_control_rules import A_SAVINGS, by_identifier, due, ledger, set_balance

COURT_ACCOUNT = "33050161000000000001"


def sweep(app, days: int) -> list[str]:
    """A day (or several) later, the worker loop's housekeeping pass, then its deliveries."""
    app.extensions["clock"] = lambda: utc_now() + timedelta(days=days)
    made = app.extensions["control_housekeeping"].run_once()
    settle(app)
    return made


def test_the_sweep_selects_only_cases_with_an_excess_and_releases_it(court, app, agencies):
    """A case whose amount owed fell outside the API (no release in that transaction):
    the sweep's one select finds it, and only it; a release on its way stops it being
    picked again; once released, it is no longer selected."""
    from gateway.cases.models import Case
    from gateway.controls.excess import cases_to_release, cases_with_excess

    set_balance(agencies, "bank-a", A_SAVINGS, "80000.00")
    inquire(court, app)
    account = by_identifier(report(court), A_SAVINGS)
    frozen = control(court, app, "freeze", amount="80000.00", targets=[account["id"]])
    assert frozen["state"] == "completed"
    db, now = app.extensions["db"], utc_now()
    with db.reading() as session:
        case_id = session.get_one(Request, frozen["id"]).case_id
        assert cases_with_excess(session, now) == []  # 80000 frozen, 150000 owed
    with db.transaction() as session:
        session.get_one(Case, case_id).amount_owed = Decimal("50000.00")
    with db.reading() as session:
        assert cases_with_excess(session, now) == [case_id]
        assert cases_to_release(session, now) == [case_id]
    housekeeping = app.extensions["control_housekeeping"]
    (release_id,) = housekeeping.run_once()
    with db.reading() as session:
        assert cases_with_excess(session, now) == [case_id]  # the freeze still holds 80000 at the bank...
        assert cases_to_release(session, now) == []  # ...but 30000 is on its way back: not asked twice
    assert housekeeping.run_once() == []
    settle(app)
    assert agencies["bank-a"].agency.account(A_SAVINGS).frozen == Decimal("50000.00")
    assert court.get(f"/api/v1/requests/{release_id}").json()["state"] == "completed"
    with db.reading() as session:
        assert cases_with_excess(session, now) == []


def test_freezes_above_what_is_still_owed_are_released_and_deducts_reconciled(court, app, agencies):
    set_balance(agencies, "bank-a", A_SAVINGS, "80000.00")
    inquire(court, app)
    account = by_identifier(report(court), A_SAVINGS)
    bank = agencies["bank-a"].agency
    frozen = control(court, app, "freeze", amount="80000.00", targets=[account["id"]])
    assert frozen["state"] == "completed"

    deducted = control(court, app, "deduct", amount="30000.00", targets=[account["id"]], court_account=COURT_ACCOUNT)
    assert deducted["state"] == "completed", deducted["deliveries"]
    assert bank.account(A_SAVINGS).frozen == Decimal("50000.00")
    entries = ledger(court)["controls"]
    (transfer,) = [c for c in entries if c["action"] == "deduct"]
    assert (transfer["state"], transfer["amount"]) == ("deducted", "30000.00")
    assert [i["kind"] for i in due(court) if i["control_id"] == transfer["id"]] == ["deduct_unconfirmed"]
    assert sweep(app, 0) == []  # 50000 frozen, 70000 still owed: nothing to release

    # The debtor paid 40000: the court lowers the amount owed to 60000; 30000 is still owed.
    lowered = court.post("/api/v1/cases", json={"case_number": CASE, "court_code": COURT, "amount_owed": "60000.00",
                                                "parties": [{"role": "debtor", "subject": DEBTOR}]})
    assert lowered.status_code == 200, lowered.text
    settle(app)
    assert bank.account(A_SAVINGS).frozen == Decimal("30000.00")
    (freeze,) = [c for c in ledger(court)["controls"] if c["action"] == "freeze"]
    assert (freeze["state"], freeze["amount"], freeze["deducted"]) == ("in_force", "30000.00", "30000.00")
    (release,) = [e for e in audit_rows(app) if e.action == "request.unfreeze"]
    assert release.actor_sub == "gateway:controls" and "release of excess" in release.details["reason"]
    # The release carries the freeze's legal documents and shows its officer's credentials.
    shown = court.get(f"/api/v1/requests/{release.request_id}").json()
    assert shown["documents"] == frozen["documents"] and len(shown["documents"]) == 1
    with app.extensions["db"].reading() as session:
        row = session.get(Request, release.request_id)
        assert (row.officer_sub, row.source_request_id) == ("gateway:controls", frozen["id"])
        assert [c.officer_sub for c in credentials_of(session, row)] == ["officer.wang"]
        assert [d.document.content for d in documents_of(session, row.id)] == [LEGAL_PDF]
    assert sweep(app, 0) == []  # released once, not again

    # Money arriving is the court's own confirmation; a different sum stays on the list.
    confirmed = court.post(f"/api/v1/controls/{transfer['id']}/receipt", json={"amount": "29999.00", "reference": "BK1"})
    assert confirmed.status_code == 200, confirmed.text
    assert (confirmed.json()["state"], confirmed.json()["received"]) == ("received", "29999.00")
    (mismatch,) = [i for i in due(court) if i["control_id"] == transfer["id"]]
    assert mismatch["kind"] == "deduct_mismatch" and "29999.00" in mismatch["detail"]
    again = court.post(f"/api/v1/controls/{transfer['id']}/receipt", json={"amount": "30000.00"})
    assert again.status_code == 409


class TestRepeatFreezes:
    """Six-month deposit terms here: the sandbox bank counts a term from the real day it
    receives the freeze, while these tests move the gateway's clock days ahead."""

    @pytest.fixture
    def overrides(self, overrides):
        return {**overrides, "controls": {"term_months": {"deposit": 6}}}

    def test_a_repeat_freeze_covers_the_shortfall_when_the_balance_rises(self, court, app, agencies):
        set_balance(agencies, "bank-a", A_SAVINGS, "20000.00")
        inquire(court, app)
        account = by_identifier(report(court), A_SAVINGS)
        bank = agencies["bank-a"].agency
        state = control(court, app, "freeze", amount="50000.00", targets=[account["id"]], repeat={"days": 5})
        assert state["state"] == "completed", state["deliveries"]
        assert bank.account(A_SAVINGS).frozen == Decimal("20000.00")

        (attempt,) = sweep(app, 1)  # a day later: 30000 asked again; the account holds nothing more
        assert court.get(f"/api/v1/requests/{attempt}").json()["documents"] == state["documents"] != []
        assert bank.account(A_SAVINGS).frozen == Decimal("20000.00")
        set_balance(agencies, "bank-a", A_SAVINGS, "70000.00")
        assert sweep(app, 1) == []  # one attempt a day
        assert len(sweep(app, 2)) == 1
        assert bank.account(A_SAVINGS).frozen == Decimal("50000.00")
        assert sweep(app, 3) == []  # covered: no more attempts
        assert ledger(court)["cash_frozen"] == "50000.00"
        outcomes = [e.outcome for e in audit_rows(app) if e.action == "control.repeat_freeze"]
        assert outcomes == ["attempted", "attempted", "covered"]
        cancelled = court.post(f"/api/v1/requests/{state['id']}/cancel")
        assert cancelled.status_code == 409 and "covered" in cancelled.text


    def test_a_repeat_freeze_stops_when_cancelled_and_only_freezes_repeat(self, court, app, agencies):
        set_balance(agencies, "bank-a", A_SAVINGS, "20000.00")
        inquire(court, app)
        account = by_identifier(report(court), A_SAVINGS)
        not_a_freeze = submit(court, "seal", legal_basis=BASIS, targets=[account["id"]], repeat={"days": 5})
        assert not_a_freeze.status_code == 422
        state = control(court, app, "freeze", amount="50000.00", targets=[account["id"]], repeat={})
        cancelled = court.post(f"/api/v1/requests/{state['id']}/cancel")
        assert cancelled.status_code == 200, cancelled.text
        assert (cancelled.json()["state"], cancelled.json()["attempts"]) == ("cancelled", 0)
        assert cancelled.json()["ends_at"][:10] == (utc_now() + timedelta(days=30)).date().isoformat()  # the default
        set_balance(agencies, "bank-a", A_SAVINGS, "70000.00")
        assert sweep(app, 1) == []
        assert agencies["bank-a"].agency.account(A_SAVINGS).frozen == Decimal("20000.00")
        assert [e.outcome for e in audit_rows(app) if e.action == "control.repeat_freeze"] == ["cancelled"]


def test_a_queued_seal_takes_effect_when_the_one_ahead_is_released(court, app, agencies):
    inquire(court, app)
    units = [a for a in report(court)["assets"] if a["agency"] == "land" and a["category"] == "real_estate"]
    unit = next(a for a in units if not any("seal" in e for e in a["encumbrances"]))
    assert control(court, app, "seal", targets=[unit["id"]])["state"] == "completed"
    # A later ruling on the same unit waits behind the first seal.
    second = control(court, app, "seal", targets=[unit["id"]], legal_basis={**BASIS, "number": BASIS["number"] + "之二"})
    assert second["state"] == "completed", second["deliveries"]
    (first, waiting) = ledger(court)["controls"]
    assert (first["state"], waiting["state"], waiting["queue_position"]) == ("in_force", "queued", 2)
    (shown,) = [a for a in report(court)["assets"] if a["identifier"] == unit["identifier"]]
    assert [c["state"] for c in shown["controls"]] == ["in_force", "queued"] and shown["controls"][1]["ahead"]

    assert control(court, app, "release", targets=[unit["id"]])["state"] == "completed"
    assert [s.reference for s in agencies["land"].agency.seals_on(unit["identifier"])] == [waiting["agency_reference"]]
    (still,) = ledger(court)["controls"]
    assert still["state"] == "queued"  # the gateway has not heard yet
    inquire(court, app)  # the registry now lists our seal in force
    (took_effect,) = ledger(court)["controls"]
    assert (took_effect["id"], took_effect["state"], took_effect["queue_position"], took_effect["ahead"]) == (
        waiting["id"], "in_force", None, [])
    assert any(e.details.get("controls_took_effect") == [waiting["id"]]
               for e in audit_rows(app) if e.action == "delivery.result")
