"""The law's rules on controls, through the API down to the sandbox agencies: the
ledger of controls with their expiry, the cap across banks (also under concurrent
requests), exempt accounts and the protected sum, terms and renewals before and
after expiry, and the follow-up list.

Balances are set at the sandbox bank before the inquiry, so the asset report and
the spread see them; time is moved by the app's clock, never by sleeping.
"""

from __future__ import annotations

import threading
from datetime import timedelta
from decimal import Decimal

import pytest
from click.testing import CliRunner

from gateway.cli import main
from gateway.controls.terms import add_months
from gateway.timeutil import court_today, utc_now
from test_agency_actions import (  # noqa: F401 (fixtures)
    BASIS, CASE, DEBTOR, agencies, app, assets, control, court, inquire, report, settle, submit,
)

# Accounts the sandbox banks hold for DEBTOR (deterministic: bank_data.py).
A_SAVINGS = "6222064073328022300"
B_SAVINGS, B_CURRENT, B_EXEMPT = "6222785647296503004", "6222785698844216409", "6222785687327852744"
N_CURRENT = "6222472701655262758"


def set_balance(agencies, bank: str, number: str, amount: str) -> None:
    agency = agencies[bank].agency
    agency.holdings(DEBTOR["id_number"])  # the bank opens the debtor's accounts on first sight
    agency.set_balance(number, Decimal(amount))


def by_identifier(rep: dict, identifier: str) -> dict:
    (asset,) = [a for a in rep["assets"] if a["identifier"] == identifier]
    return asset


def ledger(api) -> dict:
    reply = api.get(f"/api/v1/cases/{CASE}/controls")
    assert reply.status_code == 200, reply.text
    return reply.json()


def due(api, **query) -> list[dict]:
    reply = api.get("/api/v1/controls/due", params=query)
    assert reply.status_code == 200, reply.text
    return reply.json()["items"]


def move_clock(app, days: int) -> None:
    app.extensions["clock"] = lambda: utc_now() + timedelta(days=days)


def test_the_cap_holds_across_three_banks_with_balances_below_and_above_the_amount(court, app, agencies):
    set_balance(agencies, "bank-a", A_SAVINGS, "20000.00")
    set_balance(agencies, "bank-b", B_SAVINGS, "30000.00")
    set_balance(agencies, "bank-national", N_CURRENT, "500000.00")
    inquire(court, app)
    rep = report(court)
    small = [by_identifier(rep, A_SAVINGS)["id"], by_identifier(rep, B_SAVINGS)["id"]]
    large = by_identifier(rep, N_CURRENT)["id"]

    # 60000 asked of two accounts holding 50000: each frozen whole, the case holds 50000.
    state = control(court, app, "freeze", amount="60000.00", targets=small)
    assert state["state"] == "completed", state["deliveries"]
    assert agencies["bank-a"].agency.account(A_SAVINGS).frozen == Decimal("20000.00")
    assert agencies["bank-b"].agency.account(B_SAVINGS).frozen == Decimal("30000.00")
    held = ledger(court)
    assert held["cash_frozen"] == "50000.00"
    year = add_months(court_today(), 12)
    assert sorted((c["agency"], c["state"], c["amount"], c["until"], c["days_left"]) for c in held["controls"]) == [
        ("bank-a", "in_force", "20000.00", year.isoformat(), (year - court_today()).days),
        ("bank-b", "in_force", "30000.00", year.isoformat(), (year - court_today()).days),
    ]
    assert all(c["legal_basis"] == BASIS and c["request_id"] == state["id"] for c in held["controls"])

    # Owed 100000: 50000 more at most, though the third bank holds 500000.
    too_much = submit(court, "freeze", amount="50000.01", legal_basis=BASIS, targets=[*small, large])
    assert too_much.status_code == 422
    assert too_much.json()["error"]["fields"]["amount"] == ["at most 50000.00 may still be frozen for this case"]
    # The spread counts what this case froze already: the first two accounts have nothing left.
    state = control(court, app, "freeze", amount="50000.00", targets=[*small, large])
    assert state["state"] == "completed", state["deliveries"]
    assert [d["agency"] for d in state["deliveries"]] == ["bank-national"]
    assert agencies["bank-national"].agency.account(N_CURRENT).frozen == Decimal("50000.00")
    frozen_at_banks = sum((agencies[bank].agency.account(number).frozen - before for bank, number, before in (
        ("bank-a", A_SAVINGS, 0), ("bank-b", B_SAVINGS, 0), ("bank-national", N_CURRENT, 0))), Decimal("0"))
    assert frozen_at_banks == Decimal("100000.00")
    assert ledger(court)["cash_frozen"] == report(court)["cash_frozen"] == "100000.00"
    nothing_left = submit(court, "freeze", amount="0.01", legal_basis=BASIS, targets=[large])
    assert nothing_left.status_code == 422


def test_exempt_accounts_are_shown_apart_and_left_out_of_cash_found_and_the_ratio(court, app, agencies):
    set_balance(agencies, "bank-b", B_SAVINGS, "30000.00")
    set_balance(agencies, "bank-b", B_CURRENT, "0.00")
    set_balance(agencies, "bank-b", B_EXEMPT, "60000.00")  # a minimum-living-allowance or pension account
    inquire(court, app)
    rep = report(court)
    assert by_identifier(rep, B_EXEMPT)["exempt"] is True
    assert by_identifier(rep, B_SAVINGS)["exempt"] is False
    freezable = sum(Decimal(a["balance"] or "0") for a in rep["assets"]
                    if a["category"] in ("deposit", "wealth_product") and a["identifier"] != B_EXEMPT)
    assert Decimal(rep["cash_found"]) == freezable
    assert Decimal(rep["cash_exempt"]) >= Decimal("60000.00")  # the exempt money, shown apart
    assert rep["cash_recoverable_ratio"] == str((freezable / Decimal(rep["amount_owed"])).quantize(Decimal("0.0001")))


def test_two_concurrent_freezes_cannot_together_exceed_the_amount_owed(court, app, agencies):
    inquire(court, app)
    deposits = [a["id"] for a in report(court)["assets"] if a["category"] == "deposit"]
    judge = court.token(role="approver", sub="judge.zhao")
    for round_ in range(3):
        replies: list = [None, None]
        start = threading.Barrier(2)

        def propose(slot: int) -> None:
            start.wait()
            replies[slot] = submit(court, "freeze", amount="60000.00", legal_basis=BASIS, targets=deposits)

        threads = [threading.Thread(target=propose, args=(slot,)) for slot in (0, 1)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(30)
        codes = sorted(r.status_code for r in replies)
        assert codes == [202, 422], (round_, [r.text for r in replies])
        (refused,) = [r for r in replies if r.status_code == 422]
        # The first, still awaiting approval, reserves its 60000 against the cap.
        assert refused.json()["error"]["fields"]["amount"] == ["at most 40000.00 may still be frozen for this case"]
        (accepted,) = [r for r in replies if r.status_code == 202]
        rejected = court.post(f"/api/v1/requests/{accepted.json()['id']}/approval",
                              json={"decision": "reject", "reason": f"round {round_}"}, token=judge)
        assert rejected.status_code == 200, rejected.text  # a rejected freeze reserves nothing any more
    assert ledger(court)["controls"] == []


class TestUnderACourtsOwnSettings:
    """The debtor keeps 1000 a month; deposits are frozen six months at a time."""

    @pytest.fixture
    def overrides(self, overrides):
        return {**overrides, "controls": {"protected_monthly_sum": "1000.00", "term_months": {"deposit": 6}}}


    def test_exempt_accounts_are_never_frozen_and_the_protected_sum_stays_available(self, court, app, agencies):
        bank = agencies["bank-b"].agency
        set_balance(agencies, "bank-b", B_SAVINGS, "30000.00")
        set_balance(agencies, "bank-b", B_CURRENT, "500.00")
        inquire(court, app)
        rep = report(court)
        exempt = by_identifier(rep, B_EXEMPT)
        assert exempt["details"]["account_kind"] == "13"
        refused = submit(court, "freeze", amount="100.00", legal_basis=BASIS, targets=[exempt["id"]])
        assert refused.status_code == 422
        assert refused.json()["error"]["fields"] == {
            "targets[0]": [f"{B_EXEMPT} is an exempt account (kind 13): never frozen or deducted"]}

        spread = [a["id"] for a in assets(rep, "bank-b", "deposit")]
        state = control(court, app, "freeze", amount="90000.00", targets=spread)
        assert state["state"] == "completed", state["deliveries"]
        # 30500 held, 1000 left to the debtor: the largest account gives 29500, the rest nothing.
        assert bank.account(B_SAVINGS).frozen == Decimal("29500.00")
        assert bank.account(B_CURRENT).frozen == Decimal("0.00")
        assert bank.account(B_EXEMPT).frozen == Decimal("0.00")
        (held,) = ledger(court)["controls"]
        assert (held["identifier"], held["amount"], held["until"]) == (
            B_SAVINGS, "29500.00", add_months(court_today(), 6).isoformat())

    def test_renew_before_expiry_extends_it_and_after_expiry_is_refused(self, court, app, agencies, database_url):
        inquire(court, app)
        account = by_identifier(report(court), A_SAVINGS)
        # Cash found and left uncontrolled for more than 15 days is on the list.
        move_clock(app, 16)
        assert A_SAVINGS in {i["identifier"] for i in due(court) if i["kind"] == "uncontrolled"}
        move_clock(app, 0)

        state = control(court, app, "freeze", amount="10000.00", targets=[account["id"]])
        assert state["state"] == "completed", state["deliveries"]
        six_months = add_months(court_today(), 6)
        assert not [i for i in due(court) if i["kind"] == "lapsing"]  # 30 warning days: not yet
        (warned,) = [i for i in due(court, days=200) if i["kind"] == "lapsing"]
        assert (warned["identifier"], warned["due"]) == (A_SAVINGS, six_months.isoformat())
        # The same list on the command line (plain tab-separated lines without a terminal).
        listed = CliRunner().invoke(main, ["controls", "due", "--days", "200", "--case", CASE],
                                    env={"GATEWAY_DATABASE_URL": database_url})
        assert listed.exit_code == 0, listed.output
        assert f"lapsing\t{six_months.isoformat()}\t{CASE}\tbank-a\t{A_SAVINGS}\t" in listed.output
        move_clock(app, 16)
        assert A_SAVINGS not in {i["identifier"] for i in due(court) if i["kind"] == "uncontrolled"}
        move_clock(app, 0)

        # Renewed now: six more months from the current expiry (within the law's year).
        renewed = control(court, app, "renew", targets=[account["id"]])
        assert renewed["state"] == "completed", renewed["deliveries"]
        (held,) = ledger(court)["controls"]
        assert (held["until"], held["renewals"], held["amount"]) == (add_months(six_months, 6).isoformat(), 1, "10000.00")
        assert agencies["bank-a"].agency.account(A_SAVINGS).freezes[-1].until == add_months(six_months, 6)

        # A year and a day later it has lapsed: no renewal, a new freeze is needed.
        move_clock(app, (add_months(six_months, 6) - court_today()).days + 1)
        late = submit(court, "renew", legal_basis=BASIS, targets=[account["id"]])
        assert late.status_code == 422
        assert "lapsed" in late.json()["error"]["message"] and "a new freeze is needed" in late.json()["error"]["message"]
        (lapsed,) = ledger(court)["controls"]
        assert lapsed["state"] == "lapsed" and lapsed["days_left"] == -1
        assert report(court)["cash_frozen"] == "0.00"
        assert [i["kind"] for i in due(court) if i["identifier"] == A_SAVINGS][:1] == ["lapsing"]


def test_the_controls_of_a_case_are_for_its_own_court(court, app, agencies):
    other = court.token(court="110105", sub="officer.li")
    assert court.get(f"/api/v1/cases/{CASE}/controls", token=other).status_code == 404
    assert court.get("/api/v1/controls/due", params={"court": "110105"}).status_code == 403
    assert court.get(f"/api/v1/cases/{CASE}/controls", token=None).status_code == 401
