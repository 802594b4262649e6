"""Every agency kind and action through the gateway's API, down to the sandbox over its
real protocol and back: SOAP (banks, tax), SFTP batch files (national bank, real
estate), REST (public security, market regulation).

Each test gets fresh sandboxes (their balances and registers change) and checks the
effect where it happens: at the agency, not only in the gateway's answer.
"""

from __future__ import annotations

import uuid
from decimal import Decimal

import pytest

from conftest import COURT, LEGAL_DOCUMENT, write_registry  # noqa: F401 (write_registry documents the other way in)
from gateway.registry import Registry, load_registry
from gateway.settings import CONFIG_DIR
from sandboxes.run import ALL, start_sandboxes
from gateway.timeutil import court_today

CASE = "(2025)浙0102执88号"
# A fictitious debtor (valid check digit) who holds something at every sandbox agency:
# accounts at the three banks, flats (one sealed by another court), a car, company shares.
DEBTOR = {"kind": "person", "name": "李四", "id_number": "330106199001012208"}
OWED = "100000.00"
BASIS = {"kind": "assistance_notice", "number": "(2025)浙0106执88号之一"}


@pytest.fixture
def agencies():
    """Fresh sandboxes for each test (function scope): controls change their state."""
    sandboxes = start_sandboxes(ports={name: 0 for name in (*ALL, "sftp")})
    yield sandboxes
    sandboxes.stop()


@pytest.fixture
def app(overrides, agencies):
    from gateway.app import create_app

    default = load_registry(CONFIG_DIR / "agencies.toml")  # its agencies that a sandbox serves (not bank-c, which polls)
    registry = Registry([a for a in default if a.id in agencies.endpoints], default.source).with_endpoints(agencies.endpoints)
    application = create_app(overrides, registry=registry)
    yield application
    application.extensions["db"].dispose()


@pytest.fixture
def court(api):
    body = {"case_number": CASE, "court_code": COURT, "amount_owed": OWED,
            "parties": [{"role": "debtor", "subject": DEBTOR}]}
    reply = api.post("/api/v1/cases", json=body)
    assert reply.status_code == 201, reply.text
    api.file_credentials()  # the officer proposes controls
    return api


def settle(app) -> None:
    assert app.extensions["worker"].drain_until_settled(timeout=60), "deliveries still under way"


def submit(api, action: str, **fields):
    if action != "inquiry":
        fields.setdefault("documents", [LEGAL_DOCUMENT])
    body = {"case_number": CASE, "subject": DEBTOR, "action": action, **fields}
    return api.post("/api/v1/requests", json=body, headers={"Idempotency-Key": f"{action}-{uuid.uuid4().hex}"})


def inquire(api, app) -> dict:
    reply = submit(api, "inquiry")
    assert reply.status_code == 202, reply.text
    settle(app)
    state = api.get(f"/api/v1/requests/{reply.json()['id']}").json()
    assert state["state"] == "completed", [(d["agency"], d["error"]) for d in state["deliveries"]]
    return state


def control(api, app, action: str, **fields) -> dict:
    """Propose, have a judge approve, carry out; return the request state."""
    fields.setdefault("legal_basis", BASIS)
    reply = submit(api, action, **fields)
    assert reply.status_code == 202, reply.text
    assert reply.json()["state"] == "awaiting_approval"
    judge = api.token(role="approver", sub="judge.zhao")
    decided = api.post(f"/api/v1/requests/{reply.json()['id']}/approval", json={"decision": "approve"}, token=judge)
    assert decided.status_code == 200, decided.text
    settle(app)
    return api.get(f"/api/v1/requests/{reply.json()['id']}").json()


def report(api) -> dict:
    reply = api.get(f"/api/v1/cases/{CASE}/subjects/{DEBTOR['id_number']}/assets")
    assert reply.status_code == 200, reply.text
    return reply.json()


def assets(rep: dict, agency: str, category: str) -> list[dict]:
    return [a for a in rep["assets"] if a["agency"] == agency and a["category"] == category]


def test_one_inquiry_reaches_five_agency_kinds_over_three_protocols(court, app, agencies):
    state = inquire(court, app)
    assert {(d["agency"], d["transport"]) for d in state["deliveries"]} == {
        ("bank-a", "soap"), ("bank-b", "soap"), ("bank-national", "sftp"), ("tax", "soap"),
        ("psb", "rest"), ("land", "sftp"), ("samr", "rest")}
    rep = report(court)
    assert rep["gaps"] == []
    # What each agency holds, as the agency itself says, is what the report shows.
    for bank in ("bank-a", "bank-b", "bank-national"):
        held = {a.number for a in agencies[bank].agency.holdings(DEBTOR["id_number"]).accounts}
        assert {a["identifier"] for a in assets(rep, bank, "deposit")} == held
    units = {t.unit for t in agencies["land"].agency.holdings(DEBTOR["id_number"], DEBTOR["name"]).titles}
    assert {a["identifier"] for a in assets(rep, "land", "real_estate")} >= units
    assert any("seal place 1" in e for a in assets(rep, "land", "real_estate") for e in a["encumbrances"])
    assert assets(rep, "psb", "vehicle") and assets(rep, "psb", "identity")
    assert assets(rep, "samr", "equity")
    assert assets(rep, "tax", "tax")
    cash = [a for a in rep["assets"] if a["category"] in ("deposit", "wealth_product")]
    assert Decimal(rep["cash_found"]) == sum(Decimal(a["balance"] or "0") for a in cash if not a["exempt"])
    assert Decimal(rep["cash_exempt"]) == sum(Decimal(a["balance"] or "0") for a in cash if a["exempt"])


def test_bank_freeze_deduct_unfreeze_over_soap_move_money_at_the_bank(court, app, agencies):
    inquire(court, app)
    bank = agencies["bank-a"].agency
    (largest,) = sorted(assets(report(court), "bank-a", "deposit"), key=lambda a: Decimal(a["balance"]))[-1:]
    account = largest["identifier"]
    balance_before = bank.account(account).balance

    state = control(court, app, "freeze", amount="50000.00", targets=[largest["id"]])
    assert state["state"] == "completed", state["deliveries"]
    assert bank.account(account).frozen == Decimal("50000.00")
    rep = report(court)
    (frozen,) = [a for a in rep["assets"] if a["identifier"] == account]
    (held,) = frozen["controls"]
    assert (held["action"], held["outcome"], held["amount"]) == ("freeze", "controlled", "50000.00")
    assert held["until"] == court_today().replace(year=court_today().year + 1).isoformat()
    assert rep["cash_frozen"] == "50000.00"

    renewed = control(court, app, "renew", targets=[largest["id"]])
    assert renewed["state"] == "completed", renewed["deliveries"]
    (held,) = [a for a in report(court)["assets"] if a["identifier"] == account][0]["controls"]
    assert (held["action"], held["amount"]) == ("freeze", "50000.00")  # a renewal keeps what it renews

    deducted = control(court, app, "deduct", amount="20000.00", targets=[largest["id"]],
                       court_account="33050161000000000001")
    assert deducted["state"] == "completed", deducted["deliveries"]
    assert bank.account(account).balance == balance_before - Decimal("20000.00")
    assert [t.amount for t in bank.transfers] == [Decimal("20000.00")]
    (held,) = [a for a in report(court)["assets"] if a["identifier"] == account][0]["controls"]
    assert (held["amount"], held["deducted"]) == ("30000.00", "20000.00")

    released = control(court, app, "unfreeze", targets=[largest["id"]])
    assert released["state"] == "completed", released["deliveries"]
    assert bank.account(account).frozen == Decimal("0.00")
    rep = report(court)
    assert [a["controls"] for a in rep["assets"] if a["identifier"] == account] == [[]]
    assert rep["cash_frozen"] == "0.00"


def test_a_freeze_over_the_batch_channel_spreads_the_amount_largest_balance_first(court, app, agencies):
    inquire(court, app)
    deposits = assets(report(court), "bank-national", "deposit")
    balances = sorted((Decimal(a["balance"]) for a in deposits), reverse=True)
    amount = balances[0] + Decimal("1000.00")  # more than the largest account holds
    state = control(court, app, "freeze", amount=str(amount), targets=[a["id"] for a in deposits])
    (delivery,) = state["deliveries"]
    assert (delivery["agency"], delivery["transport"], delivery["state"]) == ("bank-national", "sftp", "answered")
    bank = agencies["bank-national"].agency
    frozen = sorted((bank.account(a["identifier"]).frozen for a in deposits), reverse=True)
    assert frozen[:2] == [balances[0], Decimal("1000.00")] and sum(frozen) == amount
    assert report(court)["cash_frozen"] == str(amount)


def test_no_freeze_beyond_the_amount_owed(court, app, agencies):
    inquire(court, app)
    deposits = [a for a in report(court)["assets"] if a["category"] == "deposit"]
    too_much = submit(court, "freeze", amount="100000.01", legal_basis=BASIS, targets=[a["id"] for a in deposits])
    assert too_much.status_code == 422
    assert too_much.json()["error"]["fields"]["amount"] == ["at most 100000.00 may still be frozen for this case"]
    state = control(court, app, "freeze", amount="60000.00", targets=[a["id"] for a in deposits])
    assert state["state"] == "completed"
    again = submit(court, "freeze", amount="40000.01", legal_basis=BASIS, targets=[a["id"] for a in deposits])
    assert again.status_code == 422
    assert again.json()["error"]["fields"]["amount"] == ["at most 40000.00 may still be frozen for this case"]


def test_real_estate_seal_is_queued_behind_another_court_and_released_over_sftp(court, app, agencies):
    inquire(court, app)
    units = assets(report(court), "land", "real_estate")
    free = next(a for a in units if not any("seal" in e for e in a["encumbrances"]))
    taken = next(a for a in units if any(e.startswith("seal place 1") for e in a["encumbrances"]))
    registry = agencies["land"].agency

    state = control(court, app, "seal", targets=[free["id"], taken["id"]])
    assert state["deliveries"][0]["transport"] == "sftp" and state["state"] == "completed", state["deliveries"]
    controls = {a["identifier"]: a["controls"] for a in assets(report(court), "land", "real_estate")}
    (sealed,) = controls[free["identifier"]]
    (queued,) = controls[taken["identifier"]]
    assert sealed["outcome"] == "controlled"
    assert sealed["until"] == court_today().replace(year=court_today().year + 3).isoformat()
    assert queued["outcome"] == "queued" and queued["queue_position"] >= 2 and queued["ahead"]
    assert [s.place for s in registry.seals_on(free["identifier"])] == [1]

    released = control(court, app, "release", targets=[free["id"]])
    assert released["state"] == "completed", released["deliveries"]
    assert registry.seals_on(free["identifier"]) == []
    controls = {a["identifier"]: a["controls"] for a in assets(report(court), "land", "real_estate")}
    assert controls[free["identifier"]] == []


def test_vehicle_seal_release_and_watch_over_rest(court, app, agencies):
    inquire(court, app)
    (car,) = assets(report(court), "psb", "vehicle")[:1]
    state = control(court, app, "seal", targets=[car["id"]])
    assert state["state"] == "completed", state["deliveries"]
    (held,) = [a for a in assets(report(court), "psb", "vehicle") if a["identifier"] == car["identifier"]][0]["controls"]
    assert held["outcome"] == "controlled"
    inquire(court, app)  # the register now shows the car sealed (state K)
    (seen,) = [a for a in assets(report(court), "psb", "vehicle") if a["identifier"] == car["identifier"]]
    assert any("K" in e for e in seen["encumbrances"]), seen

    released = control(court, app, "release", targets=[seen["id"]])
    assert released["state"] == "completed", released["deliveries"]

    watch = control(court, app, "watch", categories=["whereabouts"])
    assert watch["state"] == "completed", watch["deliveries"]
    assert [(d["agency"], d["state"]) for d in watch["deliveries"]] == [("psb", "answered")]


def test_equity_freeze_renew_and_unfreeze_over_rest(court, app, agencies):
    inquire(court, app)
    share = assets(report(court), "samr", "equity")[0]
    state = control(court, app, "freeze", amount="10000.00", targets=[share["id"]])
    assert state["state"] == "completed", state["deliveries"]
    (held,) = [a for a in assets(report(court), "samr", "equity") if a["identifier"] == share["identifier"]][0]["controls"]
    assert held["outcome"] in ("controlled", "queued") and held["agency_reference"]
    assert control(court, app, "renew", targets=[share["id"]])["state"] == "completed"
    assert control(court, app, "unfreeze", targets=[share["id"]])["state"] == "completed"
    assert [a["controls"] for a in assets(report(court), "samr", "equity") if a["identifier"] == share["identifier"]] == [[]]


def test_a_valuation_goes_to_the_tax_bureau_and_lands_on_the_unit(court, app, agencies):
    inquire(court, app)
    unit = assets(report(court), "land", "real_estate")[0]
    reply = submit(court, "valuation", targets=[unit["id"]])
    assert reply.status_code == 202, reply.text
    assert [(d["agency"], d["transport"]) for d in reply.json()["deliveries"]] == [("tax", "soap")]
    assert reply.json()["state"] == "accepted"  # a valuation asks, it does not control: no approval
    settle(app)
    state = court.get(f"/api/v1/requests/{reply.json()['id']}").json()
    assert state["state"] == "completed", state["deliveries"]
    (valued,) = [a for a in assets(report(court), "land", "real_estate") if a["identifier"] == unit["identifier"]]
    assert valued["value"] is not None and Decimal(valued["value"]) > 0


def test_controls_name_assets_of_this_debtor_that_the_agency_can_act_on(court, app, agencies):
    inquire(court, app)
    rep = report(court)
    identity = assets(rep, "psb", "identity")[0]
    reply = submit(court, "freeze", amount="10.00", legal_basis=BASIS, targets=[identity["id"], "no-such-asset"])
    assert reply.status_code == 422
    assert reply.json()["error"]["fields"] == {
        "targets[0]": ["agency 'psb' does not accept freeze on identity"],
        "targets[1]": ["'no-such-asset' is not an asset found for this debtor"],
    }
    deposit = assets(rep, "bank-a", "deposit")[0]
    nothing_in_force = submit(court, "unfreeze", legal_basis=BASIS, targets=[deposit["id"]])
    assert nothing_in_force.status_code == 422 and "nothing in force" in nothing_in_force.text
    no_account = submit(court, "deduct", amount="10.00", legal_basis=BASIS, targets=[deposit["id"]])
    assert no_account.status_code == 422 and no_account.json()["error"]["fields"] == {"court_account": ["required for deduct"]}
