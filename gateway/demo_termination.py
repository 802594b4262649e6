"""The demo's terminated case (终本), on a fast clock.

A second case against another debtor: inquired, refused termination while filed
less than three months ago, terminated once the app's clock has moved three months
on; the debtor then opens an account at a bank, the clock moves six months more,
and the worker loop's own pass re-queries the debtor (as ``gateway:termination``),
finds the new account, lists the case to resume and records the creditor's
notice; the officer resumes it. Only the app's clock moves: the outbox and the
agencies keep real time.
"""

from __future__ import annotations

import time
import uuid
from datetime import timedelta
from decimal import Decimal
from typing import Any

import requests
from rich.console import Console

from gateway.timeutil import court_today, utc_now
from schemas.identifiers import mask_id_number

TERMINATED_CASE = "(2024)浙0102执1300号"
# A fictitious debtor (valid check digit; not a real person).
DEBTOR = {"kind": "person", "name": "王五", "id_number": "330102199205081234"}
NEW_ACCOUNT = "6222000012345678"
NEW_BALANCE = "8800.00"
FILING_DAYS = 93  # more than three months on the court's calendar, whatever the months
REQUERY_DAYS = 184  # more than six months after termination


def _wait(officer: requests.Session, url: str, ready: Any, timeout: float) -> dict | None:
    give_up = time.monotonic() + timeout
    while time.monotonic() < give_up:
        body = officer.get(url, timeout=10).json()
        if ready(body):
            return body
        time.sleep(0.2)
    return None


def show_terminated_case(console: Console, app: Any, sandboxes: Any, officer: requests.Session, base: str,
                         court: str, creditor: dict) -> str | None:
    """Run the terminated case's story; returns what went wrong, or None."""
    case_url = f"{base}/cases/{TERMINATED_CASE}"
    failure = _inquired_case(console, officer, base, court, creditor) or _refused_too_early(console, officer, case_url)
    if failure:
        return failure
    clock = app.extensions["clock"]
    try:
        return (_terminated_months_later(console, app, officer, case_url)
                or _requery_finds_the_new_account(console, app, sandboxes, officer, case_url)
                or _resumed(console, officer, base, case_url))
    finally:
        app.extensions["clock"] = clock


def _inquired_case(console: Console, officer: requests.Session, base: str, court: str, creditor: dict) -> str | None:
    """Step 10: the second case registered and its network inquiry answered."""
    case: dict[str, Any] = {"case_number": TERMINATED_CASE, "court_code": court, "amount_owed": "60000.00",
                            "parties": [{"role": "debtor", "subject": DEBTOR}, {"role": "creditor", "subject": creditor}]}
    reply = officer.post(f"{base}/cases", json=case, timeout=10)
    if reply.status_code not in (200, 201):
        return f"registering {TERMINATED_CASE} answered {reply.status_code}: {reply.text}"
    debtor = f"{DEBTOR['name']} ({mask_id_number(DEBTOR['id_number'])})"
    inquiry: dict[str, Any] = {"case_number": TERMINATED_CASE, "subject": DEBTOR, "action": "inquiry"}
    reply = officer.post(f"{base}/requests", json=inquiry, headers={"Idempotency-Key": f"demo-{uuid.uuid4()}"},
                         timeout=10)
    if reply.status_code != 202:
        return f"the inquiry of {TERMINATED_CASE} answered {reply.status_code}: {reply.text}"
    state = _wait(officer, f"{base}/requests/{reply.json()['id']}",
                  lambda s: s["state"] not in ("accepted", "in_progress"), 60)
    if state is None or state["state"] != "completed":
        return f"the inquiry of {TERMINATED_CASE} ended {state and state['state']}"
    console.print(f"10. case {TERMINATED_CASE} against {debtor}: the network inquiry answered by "
                  f"{len(state['deliveries'])} agencies")
    return None


def _refused_too_early(console: Console, officer: requests.Session, case_url: str) -> str | None:
    """Step 11: a case filed today may not be terminated (422 naming the condition)."""
    early = officer.post(f"{case_url}/terminate", json={"reason": "no property to enforce"}, timeout=10)
    if early.status_code != 422:
        return f"terminating a case filed today answered {early.status_code}, not 422"
    console.print(f"11. terminate it today: HTTP 422 {early.json()['error']['code']}: "
                  f"{early.json()['error']['fields']['months_since_filing'][0]}")
    return None


def _terminated_months_later(console: Console, app: Any, officer: requests.Session, case_url: str) -> str | None:
    """Steps 12 and 13: the app's clock moved past three months, every condition met, terminated."""
    app.extensions["clock"] = lambda: utc_now() + timedelta(days=FILING_DAYS)
    check = officer.get(f"{case_url}/termination-check", timeout=10).json()
    met = ", ".join(f"{c['name']} {'met' if c['met'] else 'NOT met'}" for c in check["conditions"])
    console.print(f"12. fast clock, {FILING_DAYS} days on: termination check {met}")
    done = officer.post(f"{case_url}/terminate", timeout=10,
                        json={"reason": "no property to enforce", "ruling_number": "(2024)浙0102执1300号之一"})
    if done.status_code != 201:
        return f"the termination answered {done.status_code}: {done.text}"
    console.print(f"13. terminated (HTTP 201) by officer.wang; {done.json()['known_assets']} assets known; "
                  f"first re-inquiry due {done.json()['next_requery_at'][:10]}")
    return None


def _requery_finds_the_new_account(console: Console, app: Any, sandboxes: Any, officer: requests.Session,
                                   case_url: str) -> str | None:
    """Steps 14 and 15: a new account, six months more, and the worker loop's re-inquiry finds it."""
    bank = sandboxes["bank-a"].agency
    bank.open_account(DEBTOR["id_number"], NEW_ACCOUNT, Decimal(NEW_BALANCE), court_today())
    app.extensions["clock"] = lambda: utc_now() + timedelta(days=FILING_DAYS + REQUERY_DAYS)
    console.print(f"14. the debtor opens account {NEW_ACCOUNT} at bank-a ({NEW_BALANCE}); the fast clock moves "
                  f"{REQUERY_DAYS} days on, and the worker loop re-queries on its own")
    shown = _wait(officer, f"{case_url}/termination",
                  lambda t: bool(t["requeries"]) and t["requeries"][0]["state"] != "asked", 90)
    if shown is None:
        return "the scheduled re-inquiry did not finish"
    requery = shown["requeries"][0]
    found = [a["identifier"] for a in requery["new_assets"] or ()]
    if found != [NEW_ACCOUNT]:
        return f"the re-inquiry found {found}, not the new account {NEW_ACCOUNT}"
    notice = requery["creditor_notice"]
    console.print(f"15. re-inquiry {requery['round']} (requests {', '.join(requery['request_ids'])}, by "
                  f"gateway:termination) found new: {', '.join(found)}; creditor notice recorded for "
                  f"{', '.join(notice['creditors'])}: resumable {notice['resumable']}")
    return None


def _resumed(console: Console, officer: requests.Session, base: str, case_url: str) -> str | None:
    """Steps 16 and 17: the case on the follow-up list to resume, and resumed."""
    due = officer.get(f"{base}/controls/due", params={"case_number": TERMINATED_CASE}, timeout=10).json()
    items = [i for i in due["items"] if i["kind"] == "resume"]
    if not items:
        return "no resume item on the follow-up list"
    console.print(f"16. follow-up list: {items[0]['kind']} {items[0]['agency']} {items[0]['identifier']}: "
                  f"{items[0]['detail']}")
    resumed = officer.post(f"{case_url}/resume", json={"reason": f"new account {NEW_ACCOUNT} found"}, timeout=10)
    if resumed.status_code != 200:
        return f"the resumption answered {resumed.status_code}: {resumed.text}"
    console.print(f"17. resumed (HTTP 200): {resumed.json()['state']}, no more re-inquiries scheduled\n")
    return None
